"""The common kit's PostgreSQL side: bulk inserts by column arrays, pooled connections
checked only after sitting idle, relays claiming rows side by side, and the inbox
recording a batch plainly until it meets an event seen before."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, select, text
from sqlalchemy.exc import DBAPIError

from sukverse_common import db
from sukverse_common.db import BulkInsert, Database, create_engine
from sukverse_common.events.bus import InMemoryBus, each
from sukverse_common.events.contracts import UserRegistered
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.inbox import EventConsumer, EventContext, InboxDispatcher
from sukverse_common.events.outbox import OUTBOX_COLUMNS, Outbox, OutboxRelay, messaging_tables
from sukverse_common.metrics import Metrics

pytestmark = pytest.mark.real

metadata = MetaData()
tables = messaging_tables(metadata)
greetings = Table(
    "greetings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(100), unique=True),
)
INBOX_COLUMNS = ["consumer", "event_id", "event_type", "handled_at"]


@pytest.fixture
async def url(new_database: Callable[[], Any]) -> str:
    return str(await new_database())


@pytest.fixture
async def database(url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(url))
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


NOW = datetime.now(UTC)


def outbox_row(payload: str, *, topic: str = "sukverse.auth") -> tuple[object, ...]:
    return (uuid.uuid4(), topic, "user", "u-1", "io.sukverse.auth.x.v1", payload, NOW)


def registered(email: str) -> UserRegistered:
    return UserRegistered(
        user_id=uuid.uuid4(), email=email, full_name="X", roles=["student"], registered_at=NOW
    )


async def test_a_bulk_insert_keeps_the_rows_order_and_the_json_text(database: Database) -> None:
    rows = [outbox_row(f'{{"n": {n}, "name": "Ødegård"}}') for n in range(300)]
    async with database.sessions() as session, session.begin():
        await BulkInsert(tables.outbox, OUTBOX_COLUMNS).execute(session, rows)
    async with database.sessions() as session:
        stored = (await session.execute(select(tables.outbox).order_by(tables.outbox.c.id))).all()
    assert [row.event_id for row in stored] == [row[0] for row in rows]
    assert [row.payload for row in stored] == [{"n": n, "name": "Ødegård"} for n in range(300)]
    assert {row.created_at for row in stored} == {NOW}


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([outbox_row('{"n": 1}')], id="one row"),
        pytest.param([outbox_row('{"n": 1}')] * 3, id="equal rows"),
        pytest.param(
            [outbox_row("{}", topic="".join(["sukverse.", "auth"])) for _ in range(3)],
            id="equal values that are not one object",
        ),
        pytest.param(
            [(uuid.uuid4(), "t", "user", "u", "e", "{}", NOW, None) for _ in range(3)],
            id="a column of nulls",
        ),
    ],
)
async def test_a_bulk_insert_writes_every_row_when_columns_hold_one_value(
    database: Database, rows: list[tuple[object, ...]]
) -> None:
    columns = (
        OUTBOX_COLUMNS if len(rows[0]) == len(OUTBOX_COLUMNS) else [*OUTBOX_COLUMNS, "published_at"]
    )
    async with database.sessions() as session, session.begin():
        await BulkInsert(tables.outbox, columns).execute(session, rows)
    async with database.sessions() as session:
        stored = (await session.execute(select(tables.outbox).order_by(tables.outbox.c.id))).all()
    assert [tuple(getattr(row, name) for name in columns) for row in stored] == [
        (*row[:5], json.loads(str(row[5])), *row[6:]) for row in rows
    ]


@pytest.mark.parametrize("varied", [True, False], ids=["among others", "in every row"])
async def test_a_bulk_insert_refuses_a_string_too_long_for_its_column_and_writes_nothing(
    database: Database, varied: bool
) -> None:
    rows = [outbox_row("{}", topic="t" * 201), outbox_row("{}", topic="t" * 201)]
    if varied:
        rows[0] = outbox_row("{}")
    with pytest.raises(DBAPIError, match="too long"):
        async with database.sessions() as session, session.begin():
            await BulkInsert(tables.outbox, OUTBOX_COLUMNS).execute(session, rows)
    async with database.sessions() as session:
        assert (await session.execute(select(tables.outbox))).all() == []


async def test_a_bulk_insert_of_new_keys_returns_only_those_it_inserted(
    database: Database,
) -> None:
    inbox = BulkInsert(tables.inbox, INBOX_COLUMNS)
    now, ids = datetime.now(UTC), [uuid.uuid4() for _ in range(3)]
    async with database.sessions() as session, session.begin():
        first = await inbox.execute_new(
            session, [("c", ids[0], "t", now), ("c", ids[1], "t", now)], returning="event_id"
        )
        again = await inbox.execute_new(
            session,
            [("c", ids[1], "t", now), ("c", ids[2], "t", now), ("other", ids[1], "t", now)],
            returning="event_id",
        )
        assert await inbox.execute_new(session, [], returning="event_id") == []
    assert first == ids[:2]
    assert sorted(again) == sorted([ids[2], ids[1]])  # ids[1] is new for "other" only


async def _backend(database: Database) -> int:
    async with database.sessions() as session:
        pid: int = await session.scalar(text("SELECT pg_backend_pid()"))
    return pid


async def _terminate(url: str, pid: int) -> None:
    admin = await asyncpg.connect(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_a_connection_idle_past_the_window_is_checked_and_replaced_when_dead(
    database: Database, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    pid = await _backend(database)
    await _terminate(url, pid)
    assert await _backend(database) != pid  # no error: the ping found it dead


async def test_a_connection_used_within_the_window_goes_out_unchecked_and_the_pool_recovers(
    database: Database, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    pid = await _backend(database)
    await _terminate(url, pid)
    with pytest.raises(DBAPIError) as failed:
        await _backend(database)
    assert failed.value.connection_invalidated
    assert await _backend(database) != pid


async def test_relays_draining_at_once_publish_every_event_once_in_commit_order(
    database: Database,
) -> None:
    bus, outbox, seen = InMemoryBus(), Outbox(tables.outbox), []

    async def record(event: CloudEvent) -> None:
        seen.append(event.id)

    bus.subscribe("test", ["sukverse.auth"], each(record))
    await bus.start()
    committed = []
    for batch in range(6):
        async with database.sessions() as session, session.begin():
            events = [(registered(f"{batch}-{n}@example.com"), f"u{n}") for n in range(150)]
            committed += [event.id for event in await outbox.add_many(session, events)]
    relays = [
        OutboxRelay(
            outbox=outbox,
            database=database,
            bus=bus,
            metrics=Metrics("test"),
            poll_seconds=1,
            batch_size=100,
        )
        for _ in range(3)
    ]
    drained = await asyncio.gather(*(relay.drain() for relay in relays))
    drained.append(await relays[0].drain())  # what a relay that found the lock taken left
    assert sum(drained) == len(committed) == 900
    assert seen == committed
    async with database.sessions() as session:
        unpublished = select(func.count()).where(tables.outbox.c.published_at.is_(None))
        assert await session.scalar(unpublished) == 0


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name, {"service": "pool"})
    assert value is not None, name
    return value


async def test_the_pool_reports_its_size_use_and_the_checkouts_that_had_to_wait(url: str) -> None:
    metrics = Metrics("pool")
    engine = create_engine(url, pool_size=1, metrics=metrics)  # one, and one of overflow
    try:
        assert sample(metrics, "sukverse_db_pool_size") == 2
        first, second = await engine.connect(), await engine.connect()
        assert sample(metrics, "sukverse_db_pool_connections_in_use") == 2
        assert sample(metrics, "sukverse_db_pool_wait_seconds_count") == 0  # none waited yet
        third = asyncio.create_task(engine.connect().start())
        await asyncio.sleep(0.2)
        assert not third.done()  # the pool is exhausted: it waits for a check-in
        await first.close()
        await (await third).close()
        await second.close()
        assert sample(metrics, "sukverse_db_pool_wait_seconds_count") == 1
        assert sample(metrics, "sukverse_db_pool_wait_seconds_sum") >= 0.2
        assert sample(metrics, "sukverse_db_pool_connections_in_use") == 0
    finally:
        await engine.dispose()


class Greeter:
    """A consumer that writes a greeting per new user, its dispatcher, and what it did."""

    def __init__(self, database: Database) -> None:
        self.applied: list[str] = []
        self.dead: list[CloudEvent] = []
        consumer = EventConsumer("greeter")

        @consumer.on(UserRegistered)
        async def greet(ctx: EventContext, data: UserRegistered) -> None:
            self.applied.append(data.email)
            await ctx.session.execute(greetings.insert().values(email=data.email))

        self.bus = InMemoryBus()
        self.dispatcher = InboxDispatcher(
            consumer=consumer,
            database=database,
            inbox=tables.inbox,
            outbox=Outbox(tables.outbox),
            bus=self.bus,
            metrics=Metrics("test"),
            backoff_seconds=0.001,
        )

        async def dead_letter(event: CloudEvent) -> None:
            self.dead.append(event)

        self.bus.subscribe("ops", ["sukverse.auth.dlq"], each(dead_letter))

    def counted(self) -> dict[str, float]:
        metrics = self.dispatcher.metrics
        counts = {
            outcome: metrics.registry.get_sample_value(
                "sukverse_events_handled_total",
                {"service": "test", "consumer": "greeter", "outcome": outcome},
            )
            or 0.0
            for outcome in ("handled", "duplicate", "dead_lettered")
        }
        errors = metrics.registry.get_sample_value(
            "sukverse_event_handler_errors_total", {"service": "test", "consumer": "greeter"}
        )
        return {**counts, "errors": errors or 0.0}


async def started_greeter(database: Database) -> Greeter:
    greeter = Greeter(database)
    await greeter.bus.start()
    return greeter


def greeting(email: str) -> CloudEvent:
    return CloudEvent.wrap(registered(email), subject=email)


async def written(database: Database) -> list[str]:
    async with database.sessions() as session:
        return sorted((await session.scalars(select(greetings.c.email))).all())


async def test_a_batch_with_events_seen_before_applies_only_the_new_ones_once(
    database: Database,
) -> None:
    greeter, inserts = await started_greeter(database), []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO inbox"):
            inserts.append("ON CONFLICT" in statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    seen = [greeting(f"seen-{n}@example.com") for n in range(2)]
    await greeter.dispatcher.handle(seen)
    assert inserts == [False]  # all new: recorded plainly
    fresh = [greeting(f"new-{n}@example.com") for n in range(3)]
    await greeter.dispatcher.handle([fresh[0], seen[1], fresh[1], seen[0], fresh[2], fresh[0]])
    assert inserts == [False, False, True]  # plainly, refused, then skipping the seen
    assert greeter.applied == [e.data["email"] for e in (*seen, *fresh)]
    # Counted as a batch, not handled one by one after a failure.
    assert greeter.counted() == {"handled": 5, "duplicate": 3, "dead_lettered": 0, "errors": 0}
    assert await written(database) == sorted(greeter.applied)
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(tables.inbox)) == 5


@pytest.mark.parametrize("they", ["commit", "roll back"])
async def test_an_event_another_member_is_recording_waits_for_it_and_is_applied_once(
    database: Database, url: str, they: str
) -> None:
    """A rebalance can hand one event to two members of a group at once: the second
    member's insert waits for the first's transaction, and then skips the event if that
    committed, or applies it if that rolled back."""
    greeter = await started_greeter(database)
    first, second = greeting("a@example.com"), greeting("b@example.com")
    watcher = await asyncpg.connect(url)
    try:
        async with database.sessions() as theirs:
            await theirs.begin()
            await theirs.execute(
                tables.inbox.insert().values(
                    consumer="greeter",
                    event_id=first.id,
                    event_type=first.type,
                    handled_at=datetime.now(UTC),
                )
            )
            ours = asyncio.create_task(greeter.dispatcher.handle([first, second]))
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            for _ in range(200):
                if await watcher.fetchval(waiting):
                    break
                await asyncio.sleep(0.025)
            else:
                raise AssertionError("our insert never waited for the other member's")
            assert not ours.done()
            await (theirs.commit() if they == "commit" else theirs.rollback())
        await ours
    finally:
        await watcher.close()
    if they == "commit":
        assert greeter.applied == ["b@example.com"]
        assert greeter.counted() == {"handled": 1, "duplicate": 1, "dead_lettered": 0, "errors": 0}
    else:
        assert greeter.applied == ["a@example.com", "b@example.com"]
        assert greeter.counted() == {"handled": 2, "duplicate": 0, "dead_lettered": 0, "errors": 0}
    assert await written(database) == sorted(greeter.applied)


async def test_a_handler_breaking_a_unique_key_of_its_own_is_not_taken_for_a_duplicate(
    database: Database,
) -> None:
    greeter = await started_greeter(database)
    async with database.sessions() as session, session.begin():
        await session.execute(greetings.insert().values(email="taken@example.com"))
    taken, fresh = greeting("taken@example.com"), greeting("fresh@example.com")
    await greeter.dispatcher.handle([taken, fresh])
    assert [letter.id for letter in greeter.dead] == [taken.id]
    counted = greeter.counted()
    assert {k: counted[k] for k in ("handled", "duplicate", "dead_lettered")} == {
        "handled": 1,
        "duplicate": 0,
        "dead_lettered": 1,
    }
    assert counted["errors"] == greeter.dispatcher.max_attempts
    assert await written(database) == ["fresh@example.com", "taken@example.com"]
    async with database.sessions() as session:
        recorded = set(await session.scalars(select(tables.inbox.c.event_id)))
    assert recorded == {fresh.id}  # the failed event's inbox row went with its transaction
