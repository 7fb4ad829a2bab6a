"""The transactional outbox: events written with the change, published by a relay."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter

import structlog
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    bindparam,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from sukverse_common import tracing
from sukverse_common.db import BulkInsert, Database, UtcDateTime, after_commit
from sukverse_common.events.bus import Bus, Message
from sukverse_common.events.contracts import EventData
from sukverse_common.events.envelope import CloudEvent, new_ids
from sukverse_common.metrics import Metrics

log = structlog.get_logger(__name__)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class SerializedJSON(TypeDecorator[str]):
    """A JSON column written from JSON text serialized beforehand, as the event's own
    `to_bytes` makes it, so the text stored is the text later published."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table


def messaging_tables(metadata: MetaData) -> MessagingTables:
    """The outbox and inbox tables, added to a service's own metadata."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigIntId, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False),
        Column("topic", String(200), nullable=False),
        Column("aggregate_type", String(100), nullable=False),
        Column("aggregate_id", String(200), nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("payload", SerializedJSON, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime),
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=Column("published_at").is_(None),
            sqlite_where=Column("published_at").is_(None),
        ),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("handled_at", UtcDateTime, nullable=False),
    )
    return MessagingTables(outbox=outbox, inbox=inbox)


OUTBOX_COLUMNS = (
    "event_id",
    "topic",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "payload",
    "created_at",
)


class Outbox:
    """Adds events to the caller's transaction and wakes the relay once it commits."""

    def __init__(self, table: Table, *, system: str = "in_process") -> None:
        self.table = table
        self.system = system  # the bus's messaging system, for the `create` spans
        self.committed = asyncio.Event()
        self._insert = BulkInsert(table, OUTBOX_COLUMNS)

    async def add(self, session: AsyncSession, data: EventData, *, subject: str) -> CloudEvent:
        [envelope] = await self.add_many(session, [(data, subject)])
        return envelope

    async def add_many(
        self, session: AsyncSession, events: Sequence[tuple[EventData, str]]
    ) -> list[CloudEvent]:
        """Add events, each with its subject (the aggregate id), in one statement; they
        happen together, at one time."""
        if not events:
            return []
        now = datetime.now(UTC)
        with tracing.creating(
            type(events[0][0]).topic(), count=len(events), system=self.system
        ) as trace:
            envelopes = [
                CloudEvent.wrap(data, subject=subject, time=now, id=event_id, trace=trace)
                for (data, subject), event_id in zip(events, new_ids(len(events)), strict=True)
            ]
            rows = []
            for envelope, (data, _) in zip(envelopes, events, strict=True):
                kind = type(data)
                rows.append(
                    (
                        envelope.id,
                        kind.topic(),  # cached per contract
                        kind.aggregate_type,
                        envelope.subject,
                        envelope.type,
                        envelope.to_bytes().decode(),
                        envelope.time,
                    )
                )
            await self._insert.execute(session, rows)
        after_commit(session, self.committed.set)
        return envelopes


class OutboxRelay:
    """Claims unpublished rows in id order, publishes them, and marks them published.

    Rows are claimed with `FOR UPDATE SKIP LOCKED`, so replicas relaying at once never
    publish a row twice; the claim is held until the bus has accepted the batch.
    """

    def __init__(
        self,
        *,
        outbox: Outbox,
        database: Database,
        bus: Bus,
        metrics: Metrics,
        poll_seconds: float,
        batch_size: int = 500,
        linger_seconds: float = 0.005,
        observe_seconds: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.database = database
        self.bus = bus
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        # Woken by a commit, wait this long for the commits that follow, so that under
        # load one drain publishes many transactions' events.
        self.linger_seconds = linger_seconds
        self.observe_seconds = observe_seconds
        self._observed_at = -observe_seconds

    async def run(self) -> None:
        with tracing.untraced():
            await self._run()

    async def _run(self) -> None:
        try:
            await self.replay_history()
        except Exception:
            log.exception("could not replay the outbox's history to the listeners")
        failures = 0
        while True:
            self.outbox.committed.clear()
            try:
                await self.drain()
                failures = 0
            except Exception:
                failures += 1
                log.exception("outbox relay failed; retrying", attempt=failures)
                # The backlog and its age are what an outage shows: keep them current.
                with contextlib.suppress(Exception):
                    await self._observe_backlog()
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
                continue
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await self.outbox.committed.wait()
            except TimeoutError:
                continue
            await asyncio.sleep(self.linger_seconds)

    async def replay_history(self) -> int:
        """Hand the bus's listeners what this outbox published in the past they want and
        the bus cannot give them (the in-process bus keeps nothing across a restart); how
        many events that was."""
        history = self.bus.history
        if not history:
            return 0
        table = self.outbox.table
        since = datetime.now(UTC) - timedelta(seconds=max(history.values()))
        async with self.database.sessions() as session:
            rows = (
                await session.execute(
                    select(table.c.topic, table.c.aggregate_id, cast(table.c.payload, Text))
                    .where(
                        table.c.topic.in_(list(history)),
                        table.c.published_at.is_not(None),
                        table.c.created_at >= since,
                    )
                    .order_by(table.c.id)
                )
            ).all()
        if rows:
            await self.bus.replay([Message.from_json(*row) for row in rows])
        return len(rows)

    async def drain(self) -> int:
        """Publish everything committed so far; return how many events went out."""
        table = self.outbox.table
        published = 0
        while True:
            async with self.database.sessions() as session, session.begin():
                if not await self._lead(session):
                    break
                rows = await self._claim(session)
                if not rows:
                    break
                # Rows unpacked as the tuples they are: reading a row's fields by name costs
                # more than making its message.
                messages = [
                    Message.from_json(topic, key, payload) for _, topic, key, payload in rows
                ]
                if tracing.enabled():
                    await self._publish_traced(messages, [row[3] for row in rows])
                else:
                    await self.bus.publish(messages)
                if self.database.dialect == "sqlite":
                    await session.execute(
                        update(table)
                        .where(self._claimed(rows[0][0], rows[-1][0]))
                        .values(published_at=datetime.now(UTC))
                    )
            for topic, count in Counter([message.topic for message in messages]).items():
                self.metrics.events_published.labels(self.metrics.service, topic).inc(count)
            published += len(rows)
            if len(rows) < self.batch_size:
                break  # all there was; a commit meanwhile wakes the relay again
        loop = asyncio.get_running_loop()
        if loop.time() - self._observed_at >= self.observe_seconds:
            self._observed_at = loop.time()
            await self._observe_backlog()
        return published

    async def _publish_traced(self, messages: list[Message], payloads: list[str]) -> None:
        """Publish with a `send` span in the trace of each event's request, each message
        carrying its span's context."""
        contexts = [tracing.carried(payload) for payload in payloads]
        with tracing.sending(messages[0].topic, contexts, system=self.bus.system) as sent:
            for message, context in zip(messages, sent, strict=True):
                message.trace = context
            await self.bus.publish(messages)

    async def _claim(self, session: AsyncSession) -> Sequence[Row[int, str, str, str]]:
        """The next batch of unpublished rows in id order, locked until the transaction
        ends: (id, topic, aggregate id, payload) each.

        On PostgreSQL one statement claims them (`FOR UPDATE SKIP LOCKED`) and marks them
        published, returning what to publish: if publishing fails, the rollback unmarks
        them. On SQLite, which has no row locks and one writer at a time, they are read
        here and marked once published."""
        if self.database.dialect != "postgresql":
            return (await session.execute(self._claiming)).all()
        marked = await session.execute(self._claiming, {"now": datetime.now(UTC)})
        return sorted(marked.all(), key=itemgetter(0))  # by id

    @functools.cached_property
    def _claiming(self) -> Executable:
        """The claim's statement, made once: building it costs more than running it."""
        table = self.outbox.table
        columns = (
            table.c.id,
            table.c.topic,
            table.c.aggregate_id,
            cast(table.c.payload, Text).label("payload"),
        )
        unpublished = table.c.published_at.is_(None)
        if self.database.dialect != "postgresql":
            return select(*columns).where(unpublished).order_by(table.c.id).limit(self.batch_size)
        claimed = (
            select(table.c.id)
            .where(unpublished)
            .order_by(table.c.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
            .cte("claimed")
            .prefix_with("MATERIALIZED")  # the claim runs once, before the update
        )
        return (
            update(table)
            .where(table.c.id == claimed.c.id)
            .values(published_at=bindparam("now"))
            .returning(*columns)
        )

    def _claimed(self, first: int, last: int) -> ColumnElement[bool]:
        """SQLite: the rows a drain read (the first id and the last), to mark published.

        SQLite takes one writer at a time, so ids are given in commit order: the rows read
        are all the unpublished ones from the first id to the last, and the range says so
        in one comparison instead of a parameter per row."""
        table = self.outbox.table
        return table.c.id.between(first, last) & table.c.published_at.is_(None)

    async def _lead(self, session: AsyncSession) -> bool:
        """One relay per database at a time, so events leave in commit order per key even
        with many replicas; the others find the lock taken and wait for the next round."""
        if self.database.dialect != "postgresql":
            return True  # SQLite serialises writers already
        return bool(await session.scalar(self._leading))

    @functools.cached_property
    def _leading(self) -> Executable:
        key = zlib.crc32(f"sukverse-outbox:{self.outbox.table.name}".encode())
        return select(func.pg_try_advisory_xact_lock(key))

    async def _observe_backlog(self) -> None:
        table = self.outbox.table
        async with self.database.sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(table.c.created_at)).where(
                        table.c.published_at.is_(None)
                    )
                )
            ).one()
        self.metrics.outbox_backlog.set(count)
        if oldest is None:
            self.metrics.outbox_oldest_age.set(0)
        else:
            self.metrics.outbox_oldest_age.set((datetime.now(UTC) - oldest).total_seconds())
