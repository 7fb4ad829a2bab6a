"""The idempotent inbox: each event's effect and its inbox row commit together, once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import structlog
from pydantic import ValidationError
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_common import tracing
from sukverse_common.db import BulkInsert, Database, unavailable
from sukverse_common.events.bus import Bus, Message, dead_letter_topic
from sukverse_common.events.contracts import EventData, topic_of
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.outbox import Outbox
from sukverse_common.metrics import Metrics

log = structlog.get_logger(__name__)

UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE for a duplicate key

E = TypeVar("E", bound=EventData)


@dataclass(frozen=True)
class EventContext:
    """What a handler gets besides the event's data: its transaction and its outbox."""

    session: AsyncSession
    event: CloudEvent
    outbox: Outbox


EventHandler = Callable[[EventContext, Any], Awaitable[None]]
BatchPreparer = Callable[[AsyncSession, Sequence[EventData]], Awaitable[None]]


class _SeenBeforeError(Exception):
    """A batch recorded as all new met an id the inbox already holds."""


class _Work(NamedTuple):
    event: CloudEvent
    data: EventData
    handler: EventHandler


class EventConsumer:
    """A service's declared event handlers, keyed by contract; bound to a database at start."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: dict[str, tuple[type[EventData], EventHandler]] = {}
        self.prepare: BatchPreparer | None = None

    def on(
        self, contract: type[E]
    ) -> Callable[
        [Callable[[EventContext, E], Awaitable[None]]], Callable[[EventContext, E], Awaitable[None]]
    ]:
        def register(
            handler: Callable[[EventContext, E], Awaitable[None]],
        ) -> Callable[[EventContext, E], Awaitable[None]]:
            self.handlers[contract.event_type] = (contract, handler)
            return handler

        return register

    def before_handlers(self, prepare: BatchPreparer) -> BatchPreparer:
        """Register what runs once per batch in its transaction, given the data of the
        events not seen before, ahead of their handlers: e.g. one query that reads and
        locks every row the batch will change, in a fixed order."""
        self.prepare = prepare
        return prepare

    @property
    def topics(self) -> list[str]:
        return sorted({contract.topic() for contract, _ in self.handlers.values()})


class InboxDispatcher:
    """Runs a consumer's handlers exactly once in effect per event id."""

    def __init__(
        self,
        *,
        consumer: EventConsumer,
        database: Database,
        inbox: Table,
        outbox: Outbox,
        bus: Bus,
        metrics: Metrics,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.consumer = consumer
        self.database = database
        self.inbox = inbox
        self.outbox = outbox
        self.bus = bus
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._rows = BulkInsert(inbox, ["consumer", "event_id", "event_type", "handled_at"])

    def subscribe(self) -> None:
        self.metrics.consumer(self.consumer.name)
        self.bus.subscribe(self.consumer.name, self.consumer.topics, self.handle)

    def _outcome(self, outcome: str, count: int = 1) -> None:
        self.metrics.events_handled.labels(self.metrics.service, self.consumer.name, outcome).inc(
            count
        )

    async def handle(self, events: Sequence[CloudEvent]) -> None:
        """Handle a batch in one transaction; if any handler fails, event by event, so one
        poison event costs its neighbours a second try and nothing more. Traced, each
        event's handling is a `process` span in its own trace; the batch's bookkeeping is
        no one's."""
        with tracing.untraced():
            await self._handle(events)

    async def _handle(self, events: Sequence[CloudEvent]) -> None:
        work: list[_Work] = []
        for event in events:
            entry = self.consumer.handlers.get(event.type)
            if entry is None:
                self._outcome("ignored")
                continue
            contract, handler = entry
            try:
                data = contract.model_validate(event.data)
            except ValidationError as exc:
                await self._dead_letter(event, f"data does not match {event.type}: {exc}")
                continue
            work.append(_Work(event, data, handler))
        if len(work) > 1:
            try:
                outcomes = await self._apply(work)
            except Exception as exc:
                log.info(
                    "event batch failed; handling its events one by one",
                    consumer=self.consumer.name,
                    events=len(work),
                    error=repr(exc),
                )
            else:
                for outcome, count in Counter(outcomes).items():
                    self._outcome(outcome, count)
                return
        for item in work:
            await self._handle_one(item)

    async def _handle_one(self, item: _Work) -> None:
        """Retry infrastructure trouble until it passes; dead-letter after `max_attempts`
        failures of the handler itself."""
        attempt = 0
        while True:
            attempt += 1
            try:
                [outcome] = await self._apply([item])
            except Exception as exc:
                self.metrics.handler_errors.labels(self.metrics.service, self.consumer.name).inc()
                # Infrastructure trouble: retried until it passes, never dead-lettered.
                transient = unavailable(exc)
                log.warning(
                    "event handler failed",
                    consumer=self.consumer.name,
                    event_id=str(item.event.id),
                    event_type=item.event.type,
                    attempt=attempt,
                    transient=transient,
                    error=repr(exc),
                )
                if not transient and attempt >= self.max_attempts:
                    await self._dead_letter(item.event, repr(exc))
                    return
                await asyncio.sleep(min(30.0, self.backoff_seconds * 2 ** min(attempt, 8)))
                continue
            self._outcome(outcome)
            return

    async def _apply(self, work: Sequence[_Work]) -> list[str]:
        """Record the events in the inbox and run the handlers of those not seen before,
        all in one transaction; an outcome per event.

        The batch is first recorded as if every event were new, which it nearly always
        is; if one was seen before, that transaction holds nothing else yet and is rolled
        back, and the batch runs again, skipping the events already recorded."""
        try:
            return await self._apply_recorded(work, all_new=True)
        except _SeenBeforeError:
            return await self._apply_recorded(work, all_new=False)

    async def _apply_recorded(self, work: Sequence[_Work], *, all_new: bool) -> list[str]:
        async with self.database.sessions() as session, session.begin():
            new = await self._record(session, work, all_new=all_new)
            fresh = []
            outcomes = []
            for item in work:
                if item.event.id in new:
                    new.discard(item.event.id)  # a later copy in the batch is a duplicate
                    fresh.append(item)
                    outcomes.append("handled")
                else:
                    outcomes.append("duplicate")
            if self.consumer.prepare is not None and fresh:
                await self.consumer.prepare(session, [item.data for item in fresh])
            if not tracing.enabled():
                for item in fresh:
                    context = EventContext(session=session, event=item.event, outbox=self.outbox)
                    await item.handler(context, item.data)
                return outcomes
            # Each handler in the trace its event carries (a `process` span per kept trace).
            with tracing.processing(
                [item.event for item in fresh], consumer=self.consumer.name, system=self.bus.system
            ) as traces:
                for item, within in zip(fresh, traces, strict=True):
                    context = EventContext(session=session, event=item.event, outbox=self.outbox)
                    with within:
                        await item.handler(context, item.data)
        return outcomes

    async def _record(
        self, session: AsyncSession, work: Sequence[_Work], *, all_new: bool
    ) -> set[uuid.UUID]:
        """Record the batch's events in the inbox; the ids recorded now and not before.

        On PostgreSQL, `all_new` inserts every id plainly, and an id already there (a
        redelivery, or a row another member of the group inserts meanwhile, during a
        rebalance, which the insert waits for) raises `_SeenBeforeError`. Otherwise one
        `INSERT ... ON CONFLICT DO NOTHING RETURNING` skips those and says which rows it
        inserted; the plain insert costs the server less. SQLite's executemany cannot
        return rows, so the ids already there are read first and the rest inserted: a
        member recording one of them meanwhile makes the insert fail on the key, and the
        batch is retried."""
        inbox, name, now = self.inbox, self.consumer.name, datetime.now(UTC)
        types = {item.event.id: item.event.type for item in work}
        if self.database.dialect == "postgresql":
            rows = [(name, event_id, kind, now) for event_id, kind in types.items()]
            if not all_new:
                return set(await self._rows.execute_new(session, rows, returning="event_id"))
            try:
                await self._rows.execute(session, rows)
            except IntegrityError as exc:
                if getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION:
                    raise _SeenBeforeError from exc
                raise
            return set(types)
        seen = set(
            await session.scalars(
                select(inbox.c.event_id).where(
                    inbox.c.consumer == name, inbox.c.event_id.in_(list(types))
                )
            )
        )
        new = [event_id for event_id in types if event_id not in seen]
        await self._rows.execute(
            session, [(name, event_id, types[event_id], now) for event_id in new]
        )
        return set(new)

    async def _dead_letter(self, event: CloudEvent, reason: str) -> None:
        log.error(
            "event dead-lettered",
            consumer=self.consumer.name,
            event_id=str(event.id),
            event_type=event.type,
            reason=reason[:500],
        )
        letter = CloudEvent.model_validate(
            {**event.model_dump(), "dlqconsumer": self.consumer.name, "dlqreason": reason[:1000]}
        )
        topic = dead_letter_topic(topic_of(event.type.split(".")[2]))
        await self.bus.publish([Message(topic, event.subject, letter)])
        self._outcome("dead_lettered")
