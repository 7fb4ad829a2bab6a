"""The outbox relay, the idempotent inbox and the dead-letter path, on SQLite and on
PostgreSQL (the `real` tier)."""

from __future__ import annotations

import gc
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_common.app import YOUNG_GENERATION_THRESHOLD, freeze_startup_objects
from sukverse_common.db import Database, create_engine
from sukverse_common.events.bus import InMemoryBus, Message, each
from sukverse_common.events.contracts import EventData, UserRegistered, UserRolesChanged
from sukverse_common.events.envelope import CloudEvent, new_ids
from sukverse_common.events.inbox import EventConsumer, EventContext, InboxDispatcher
from sukverse_common.events.outbox import Outbox, OutboxRelay, messaging_tables
from sukverse_common.metrics import Metrics

metadata = MetaData()
tables = messaging_tables(metadata)
greetings = Table(
    "greetings", metadata, Column("id", Integer, primary_key=True), Column("email", String(100))
)


async def scratch_database(url: str) -> AsyncIterator[Database]:
    engine = create_engine(url)
    async with engine.begin() as conn:  # a scratch schema for this kit test only
        await conn.run_sync(metadata.create_all)
    yield Database(engine)
    await engine.dispose()


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """For what only SQLite does."""
    async for database in scratch_database(f"sqlite:///{tmp_path / 'events.db'}"):
        yield database


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite file (embedded tier) or a new PostgreSQL database (real tier)."""
    async for database in scratch_database(database_url or f"sqlite:///{tmp_path / 'events.db'}"):
        yield database


def registered(email: str) -> UserRegistered:
    return UserRegistered(
        user_id=uuid.uuid4(),
        email=email,
        full_name="X",
        roles=["student"],
        registered_at=datetime.now(UTC),
    )


async def test_relay_publishes_committed_events_in_order_once(database: Database) -> None:
    bus, outbox, seen = InMemoryBus(), Outbox(tables.outbox), []

    async def record(event: CloudEvent) -> None:
        seen.append(event.data["email"])

    bus.subscribe("test", ["sukverse.auth"], each(record))
    await bus.start()
    async with database.sessions() as session, session.begin():
        for i in range(5):
            await outbox.add(session, registered(f"{i}@example.com"), subject="same-user")
    async with database.sessions() as session:
        await outbox.add(session, registered("rolled-back@example.com"), subject="x")
        await session.rollback()
    assert outbox.committed.is_set()

    relay = OutboxRelay(
        outbox=outbox, database=database, bus=bus, metrics=Metrics("test"), poll_seconds=1
    )
    assert await relay.drain() == 5
    assert await relay.drain() == 0
    assert seen == [f"{i}@example.com" for i in range(5)]
    assert relay.metrics.outbox_backlog._value.get() == 0


async def test_the_stored_payload_is_the_event_as_published(database: Database) -> None:
    outbox, sent = Outbox(tables.outbox), []

    class Recorder(InMemoryBus):
        async def publish(self, messages: Sequence[Message]) -> None:
            sent.extend(message.to_bytes() for message in messages)

    async with database.sessions() as session, session.begin():
        envelope = await outbox.add(session, registered("kim@example.com"), subject="kim")
    async with database.sessions() as session:
        stored = await session.scalar(select(tables.outbox.c.payload))
    assert stored == json.loads(envelope.to_bytes())
    assert stored["data"]["email"] == "kim@example.com"
    relay = OutboxRelay(
        outbox=outbox, database=database, bus=Recorder(), metrics=Metrics("test"), poll_seconds=1
    )
    assert await relay.drain() == 1
    assert sent == [envelope.to_bytes()]


async def test_events_added_together_share_their_time_and_store_it(database: Database) -> None:
    outbox = Outbox(tables.outbox)
    before = datetime.now(UTC)
    async with database.sessions() as session, session.begin():
        envelopes = await outbox.add_many(
            session, [(registered(f"{i}@example.com"), f"u{i}") for i in range(3)]
        )
    assert len({envelope.time for envelope in envelopes}) == 1
    assert before <= envelopes[0].time <= datetime.now(UTC)
    assert len({envelope.id for envelope in envelopes}) == 3
    async with database.sessions() as session:
        stored = list(await session.scalars(select(tables.outbox.c.created_at)))
    assert stored == [envelopes[0].time] * 3
    assert all(
        json.loads(e.to_bytes())["time"] == e.time.isoformat().replace("+00:00", "Z")
        for e in envelopes
    )


async def test_a_failed_publish_leaves_the_events_for_the_next_drain(database: Database) -> None:
    bus, outbox, attempts = InMemoryBus(), Outbox(tables.outbox), []

    async def flaky(event: CloudEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise ConnectionError("broker away")

    bus.subscribe("test", ["sukverse.auth"], each(flaky))
    await bus.start()
    async with database.sessions() as session, session.begin():
        await outbox.add(session, registered("a@example.com"), subject="a")
    relay = OutboxRelay(
        outbox=outbox, database=database, bus=bus, metrics=Metrics("test"), poll_seconds=1
    )
    with pytest.raises(ConnectionError):
        await relay.drain()
    assert await relay.drain() == 1
    assert len(attempts) == 2 and attempts[0] == attempts[1]


async def test_a_listener_hears_each_publish_first_and_its_failure_stops_nothing() -> None:
    bus, heard, handled = InMemoryBus(), [], []

    async def listener(events: Sequence[CloudEvent]) -> None:
        heard.append([event.subject for event in events])
        if len(heard) == 1:
            raise RuntimeError("a listener's own trouble")

    async def group(events: Sequence[CloudEvent]) -> None:
        handled.append([event.subject for event in events])
        assert len(heard) == len(handled)  # the listener heard them before

    bus.listen(["sukverse.auth"], listener, replay_seconds=60)
    bus.subscribe("g", ["sukverse.auth"], group)
    await bus.start()
    for batch in (["a", "b"], ["c"]):
        await bus.publish(
            [
                Message("sukverse.auth", key, CloudEvent.wrap(registered(key), subject=key))
                for key in batch
            ]
        )
    assert heard == handled == [["a", "b"], ["c"]]
    assert bus.history == {"sukverse.auth": 60}


async def test_the_relay_replays_its_recent_published_events_to_the_listeners_at_start(
    database: Database,
) -> None:
    """The in-process bus keeps nothing across a restart: what the outbox published in the
    listeners' window reaches them again, to the listeners alone; what is older, or not yet
    published, or of another topic does not."""
    outbox, earlier = Outbox(tables.outbox), InMemoryBus()
    await earlier.start()
    async with database.sessions() as session, session.begin():
        await outbox.add_many(
            session, [(registered(f"{i}@example.com"), f"u{i}") for i in range(3)]
        )
    relay = OutboxRelay(
        outbox=outbox, database=database, bus=earlier, metrics=Metrics("t"), poll_seconds=1
    )
    assert await relay.drain() == 3
    async with database.sessions() as session, session.begin():
        await session.execute(  # one of them long ago
            tables.outbox.update()
            .where(tables.outbox.c.aggregate_id == "u0")
            .values(created_at=datetime(2020, 1, 1, tzinfo=UTC))
        )
        await outbox.add(session, registered("new@example.com"), subject="unpublished")

    restarted, heard, handled = InMemoryBus(), [], []

    async def listener(events: Sequence[CloudEvent]) -> None:
        heard.extend(event.subject for event in events)

    async def group(events: Sequence[CloudEvent]) -> None:
        handled.extend(event.subject for event in events)

    restarted.listen(["sukverse.auth"], listener, replay_seconds=3600)
    restarted.subscribe("g", ["sukverse.auth"], group)
    await restarted.start()
    relay.bus = restarted
    assert await relay.replay_history() == 2
    assert heard == ["u1", "u2"] and handled == []
    silent = InMemoryBus()  # no listener: nothing to replay
    await silent.start()
    relay.bus = silent
    assert await relay.replay_history() == 0


def make_dispatcher(
    database: Database, bus: InMemoryBus, consumer: EventConsumer
) -> InboxDispatcher:
    return InboxDispatcher(
        consumer=consumer,
        database=database,
        inbox=tables.inbox,
        outbox=Outbox(tables.outbox),
        bus=bus,
        metrics=Metrics("test"),
        backoff_seconds=0.001,
    )


async def test_inbox_applies_a_redelivered_event_once(database: Database) -> None:
    consumer = EventConsumer("greeter")

    @consumer.on(UserRegistered)
    async def greet(ctx: EventContext, data: UserRegistered) -> None:
        await ctx.session.execute(greetings.insert().values(email=data.email))

    bus = InMemoryBus()
    make_dispatcher(database, bus, consumer).subscribe()
    await bus.start()
    event = CloudEvent.wrap(registered("once@example.com"), subject="u1")
    for _ in range(3):
        await bus.publish([Message("sukverse.auth", "u1", event)])
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(greetings)) == 1


async def test_a_batch_is_applied_in_order_once_even_with_an_event_repeated_in_it(
    database: Database,
) -> None:
    consumer, applied = EventConsumer("greeter"), []

    @consumer.on(UserRegistered)
    async def greet(ctx: EventContext, data: UserRegistered) -> None:
        applied.append(data.email)
        await ctx.session.execute(greetings.insert().values(email=data.email))

    bus, outbox = InMemoryBus(), Outbox(tables.outbox)
    make_dispatcher(database, bus, consumer).subscribe()
    await bus.start()
    async with database.sessions() as session, session.begin():
        envelopes = await outbox.add_many(
            session, [(registered(f"{i}@example.com"), f"user-{i % 3}") for i in range(6)]
        )
    assert [envelope.subject for envelope in envelopes] == [f"user-{i % 3}" for i in range(6)]
    relay = OutboxRelay(
        outbox=outbox, database=database, bus=bus, metrics=Metrics("test"), poll_seconds=1
    )
    assert await relay.drain() == 6
    again = [Message("sukverse.auth", e.subject, e) for e in (envelopes[4], envelopes[1])]
    await bus.publish([*again, *again])
    fresh = CloudEvent.wrap(registered("6@example.com"), subject="user-0")
    await bus.publish([Message("sukverse.auth", "user-0", fresh)] * 2)
    expected = [f"{i}@example.com" for i in range(7)]
    assert applied == expected
    async with database.sessions() as session:
        assert (await session.scalars(select(greetings.c.email))).all() == expected


async def test_an_event_another_member_records_meanwhile_is_not_applied_twice(
    sqlite_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebalance can hand one event to two members of a group at once: on SQLite the one
    that records it second fails on the inbox key, retries, and finds it handled."""
    consumer, applied = EventConsumer("greeter"), []

    @consumer.on(UserRegistered)
    async def greet(ctx: EventContext, data: UserRegistered) -> None:
        applied.append(data.email)
        await ctx.session.execute(greetings.insert().values(email=data.email))

    ours, theirs = (make_dispatcher(sqlite_database, InMemoryBus(), consumer) for _ in range(2))
    first, second = (
        CloudEvent.wrap(registered(f"{name}@example.com"), subject=name) for name in ("a", "b")
    )
    record = ours._rows.execute
    raced = []

    async def record_after_the_other_member(session: AsyncSession, rows: Sequence[object]) -> None:
        if not raced:  # between our read of the inbox and our insert
            raced.append(True)
            await theirs.handle([second])
        await record(session, rows)

    monkeypatch.setattr(ours._rows, "execute", record_after_the_other_member)
    await ours.handle([first, second])
    assert applied == ["b@example.com", "a@example.com"]
    async with sqlite_database.sessions() as session:
        assert sorted((await session.scalars(select(greetings.c.email))).all()) == [
            "a@example.com",
            "b@example.com",
        ]
        assert await session.scalar(select(func.count()).select_from(tables.inbox)) == 2


async def test_a_batch_is_prepared_once_in_its_transaction_with_its_new_events(
    database: Database,
) -> None:
    consumer, calls = EventConsumer("greeter"), []

    @consumer.before_handlers
    async def prepare(session: AsyncSession, batch: Sequence[EventData]) -> None:
        calls.append(sorted(data.email for data in batch if isinstance(data, UserRegistered)))
        await session.execute(greetings.insert().values(email="prepared"))

    @consumer.on(UserRegistered)
    async def greet(ctx: EventContext, data: UserRegistered) -> None:
        calls.append(data.email)

    dispatcher = make_dispatcher(database, InMemoryBus(), consumer)
    seen = CloudEvent.wrap(registered("seen@example.com"), subject="u0")
    await dispatcher.handle([seen])
    fresh = [CloudEvent.wrap(registered(f"{i}@example.com"), subject=f"u{i}") for i in (1, 2)]
    await dispatcher.handle([seen, *fresh, fresh[0]])
    await dispatcher.handle([seen])  # nothing new: nothing to prepare
    assert calls == [
        ["seen@example.com"],
        "seen@example.com",
        ["1@example.com", "2@example.com"],
        "1@example.com",
        "2@example.com",
    ]
    async with database.sessions() as session:
        written = (await session.scalars(select(greetings.c.email))).all()
    assert written == ["prepared", "prepared"]


async def test_a_poison_event_goes_to_the_dead_letter_topic_and_the_consumer_moves_on(
    database: Database,
) -> None:
    consumer, dead = EventConsumer("picky"), []

    @consumer.on(UserRegistered)
    async def refuse(ctx: EventContext, data: UserRegistered) -> None:
        await ctx.session.execute(greetings.insert().values(email=data.email))
        if data.email.startswith("bad"):
            raise ValueError("cannot handle this one")

    async def dead_letters(event: CloudEvent) -> None:
        dead.append(event)

    bus = InMemoryBus()
    bus.subscribe("ops", ["sukverse.auth.dlq"], each(dead_letters))
    make_dispatcher(database, bus, consumer).subscribe()
    await bus.start()
    bad = CloudEvent.wrap(registered("bad@example.com"), subject="u1")
    malformed = CloudEvent(
        source="/sukverse/auth",
        type=UserRolesChanged.event_type,
        subject="u2",
        data={"roles": "not a list"},
    )
    good = CloudEvent.wrap(registered("good@example.com"), subject="u3")
    await bus.publish([Message("sukverse.auth", "k", e) for e in (bad, malformed, good)])

    assert [letter.id for letter in dead] == [bad.id]  # no handler for roles_changed: ignored
    extra = dead[0].model_dump()
    assert extra["dlqconsumer"] == "picky" and "cannot handle" in extra["dlqreason"]
    async with database.sessions() as session:
        emails = (await session.scalars(select(greetings.c.email))).all()
    assert emails == ["good@example.com"]  # the failed attempt left no partial write


async def test_a_malformed_event_for_a_handled_type_is_dead_lettered(database: Database) -> None:
    consumer, dead = EventConsumer("roles"), []

    @consumer.on(UserRolesChanged)
    async def noop(ctx: EventContext, data: UserRolesChanged) -> None:
        return None

    async def dead_letters(event: CloudEvent) -> None:
        dead.append(event)

    bus = InMemoryBus()
    bus.subscribe("ops", ["sukverse.auth.dlq"], each(dead_letters))
    make_dispatcher(database, bus, consumer).subscribe()
    await bus.start()
    malformed = CloudEvent(
        source="/sukverse/auth",
        type=UserRolesChanged.event_type,
        subject="u2",
        data={"roles": "not a list"},
    )
    await bus.publish([Message("sukverse.auth", "u2", malformed)])
    assert len(dead) == 1
    assert "does not match" in dead[0].model_dump()["dlqreason"]


def test_a_wrapped_event_is_the_model_validation_would_make_and_serializes_once() -> None:
    data = registered("kim@example.com")
    wrapped = CloudEvent.wrap(data, subject="kim")
    validated = CloudEvent.model_validate(wrapped.model_dump())
    assert wrapped == validated
    assert wrapped.model_fields_set == validated.model_fields_set
    assert wrapped.data == data.model_dump(mode="json")
    raw = wrapped.to_bytes()
    assert raw == validated.model_dump_json().encode()
    assert wrapped.to_bytes() is raw
    parsed = CloudEvent.from_json(raw)
    assert parsed == wrapped and parsed.to_bytes() is raw
    assert wrapped.model_copy(update={"subject": "lee"}).subject == "lee"
    assert wrapped.subject == "kim"


def test_ids_made_many_at_once_are_distinct_time_ordered_version_7_uuids() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_ids(1000)
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 1000 and new_ids(0) == []
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    assert all(i == uuid.UUID(str(i)) for i in ids)
    assert all(before <= i.int >> 80 <= after for i in ids)  # the milliseconds they were made
    time.sleep(0.002)
    assert max(ids) < min(new_ids(10))  # later ids sort after
    # Random in every bit but the time and the six fixed ones: each of the 74 is set in
    # some and clear in others (a false failure has odds below 2 ** -990).
    ints = [i.int for i in ids]
    fixed = (0xFFFF_FFFF_FFFF << 80) | (0xF << 76) | (0x3 << 62)
    for bit in range(128):
        if not fixed >> bit & 1:
            assert 0 < sum(n >> bit & 1 for n in ints) < 1000


def test_start_up_objects_are_left_out_of_garbage_collection() -> None:
    outbox = Outbox(tables.outbox)  # an object made at start-up
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        assert not any(tracked is outbox for tracked in gc.get_objects())
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
