"""The Kafka bus against a real broker: order, groups, redelivery, dead letters, outages."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError
from sqlalchemy import Column, Integer, MetaData, String, Table, distinct, func, select

from sukverse_common.app import create_service_app
from sukverse_common.db import Database, create_engine
from sukverse_common.events.bus import Message, each
from sukverse_common.events.contracts import UserRegistered
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.inbox import EventConsumer, EventContext, InboxDispatcher
from sukverse_common.events.kafka import MAX_BATCH_BYTES, KafkaBus
from sukverse_common.events.outbox import Outbox, OutboxRelay, messaging_tables
from sukverse_common.keys import BUS
from sukverse_common.metrics import Metrics
from sukverse_common.settings import ServiceSettings

TOPIC = "sukverse.auth"
PARTITIONS = 3

metadata = MetaData()
tables = messaging_tables(metadata)
greetings = Table(
    "greetings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(36), nullable=False),  # not unique: a second effect would show
    Column("email", String(100), nullable=False),
)


class Broker(Protocol):
    """The session's broker, as `conftest.kafka_server` provides it."""

    address: str

    def start(self) -> str: ...

    def stop(self) -> None: ...


@pytest.fixture
def prefix() -> str:
    """Topics and groups of one test, apart from every other test's on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}."


def make_bus(broker: Broker, prefix: str, **options: Any) -> KafkaBus:
    return KafkaBus(
        bootstrap_servers=broker.address,
        topic_prefix=prefix,
        partitions=PARTITIONS,
        publish_timeout=options.pop("publish_timeout", 5.0),
        backoff_seconds=0.05,
        max_backoff_seconds=1.0,
        **options,
    )


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 30.0,
    what: str = "the condition",
) -> None:
    """Poll every 50 ms until `condition` holds; fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


def thing(subject: str, n: int) -> CloudEvent:
    return CloudEvent(
        source="/sukverse/test", type="io.sukverse.test.thing.v1", subject=subject, data={"n": n}
    )


def registered(email: str) -> UserRegistered:
    return UserRegistered(
        user_id=uuid.uuid4(),
        email=email,
        full_name="X",
        roles=["student"],
        registered_at=datetime.now(UTC),
    )


def partition_of(key: str) -> int:
    partitions = list(range(PARTITIONS))
    partition: int = DefaultPartitioner()(key.encode(), partitions, partitions)
    return partition


async def read_topic(broker: Broker, topic: str) -> list[Any]:
    """Every record of a topic, read without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.address, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while any([await consumer.position(p) < end[p] for p in partitions]):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def group_caught_up(broker: Broker, group: str, topic: str) -> bool:
    """Whether the group committed the end offset of every partition of the topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.address)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.address)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        end = await consumer.end_offsets(partitions)
        return all(
            end[p] == 0 or (p in committed and committed[p].offset == end[p]) for p in partitions
        )
    finally:
        await consumer.stop()
        await admin.close()


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Database]]]:
    """Scratch SQLite databases with the outbox, inbox and effect tables."""
    opened: list[Database] = []

    async def open_database(name: str) -> Database:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        opened.append(Database(engine))
        return opened[-1]

    yield open_database
    for db in opened:
        await db.dispose()


def greeter(name: str = "greeter") -> EventConsumer:
    consumer = EventConsumer(name)

    @consumer.on(UserRegistered)
    async def greet(ctx: EventContext, data: UserRegistered) -> None:
        await ctx.session.execute(
            greetings.insert().values(event_id=str(ctx.event.id), email=data.email)
        )

    return consumer


def make_dispatcher(consumer: EventConsumer, database: Database, bus: KafkaBus) -> InboxDispatcher:
    return InboxDispatcher(
        consumer=consumer,
        database=database,
        inbox=tables.inbox,
        outbox=Outbox(tables.outbox),
        bus=bus,
        metrics=Metrics("test"),
        backoff_seconds=0.01,
    )


async def effects(database: Database) -> tuple[int, int]:
    """Effect rows, and distinct events among them."""
    async with database.sessions() as session:
        row = (
            await session.execute(select(func.count(), func.count(distinct(greetings.c.event_id))))
        ).one()
    return int(row[0]), int(row[1])


def test_a_service_on_the_kafka_bus_builds_it_from_settings() -> None:
    with pytest.raises(ValidationError, match="kafka_bootstrap_servers"):
        ServiceSettings(bus="kafka")
    settings = ServiceSettings(
        service_name="auth",
        bus="kafka",
        kafka_bootstrap_servers="kafka:9092",
        kafka_topic_prefix="staging.",
        kafka_partitions=6,
        kafka_replication_factor=3,
    )
    app = create_service_app(
        settings, title="t", version="1", routes=[], messaging=tables, migrations="unused"
    )
    bus = app[BUS]
    assert isinstance(bus, KafkaBus)
    assert (bus.bootstrap_servers, bus.partitions, bus.replication_factor) == ("kafka:9092", 6, 3)
    assert bus.topic(TOPIC) == "staging.sukverse.auth"


@pytest.mark.real
async def test_events_of_one_key_arrive_in_publish_order_across_partitions(
    kafka_server: Broker, prefix: str
) -> None:
    keys = [f"user-{i}" for i in range(12)]
    assert len({partition_of(key) for key in keys}) == PARTITIONS
    seen: dict[str, list[int]] = defaultdict(list)

    async def record(event: CloudEvent) -> None:
        seen[event.subject].append(event.data["n"])

    bus = make_bus(kafka_server, prefix)
    bus.subscribe("order", [TOPIC], each(record))
    await bus.start()
    try:
        messages = [Message(TOPIC, key, thing(key, n)) for n in range(50) for key in keys]
        for start in range(0, len(messages), 100):
            await bus.publish(messages[start : start + 100])
        await wait_until(lambda: sum(map(len, seen.values())) >= 600, what="600 events")
    finally:
        await bus.stop()
    assert {key: seen[key] for key in keys} == {key: list(range(50)) for key in keys}


@pytest.mark.real
async def test_a_publish_larger_than_a_record_batch_arrives_whole_and_in_order(
    kafka_server: Broker, prefix: str
) -> None:
    seen: list[int] = []
    padding = "x" * 4000
    events = 2 * MAX_BATCH_BYTES // len(padding) + 10  # three batches' worth, one key

    async def record(event: CloudEvent) -> None:
        seen.append(event.data["n"])

    bus = make_bus(kafka_server, prefix)
    bus.subscribe("big", [TOPIC], each(record))
    await bus.start()
    try:
        big = [
            CloudEvent(
                source="/sukverse/test",
                type="io.sukverse.test.thing.v1",
                subject="one-key",
                data={"n": n, "pad": padding},
            )
            for n in range(events)
        ]
        await bus.publish([Message(TOPIC, "one-key", event) for event in big])
        await wait_until(lambda: len(seen) >= events, what=f"{events} events")
    finally:
        await bus.stop()
    assert seen == list(range(events))


@pytest.mark.real
async def test_every_group_gets_every_event(kafka_server: Broker, prefix: str) -> None:
    got: dict[str, list[int]] = defaultdict(list)

    def collector(group: str) -> Callable[[CloudEvent], Awaitable[None]]:
        async def collect(event: CloudEvent) -> None:
            got[group].append(event.data["n"])

        return collect

    bus = make_bus(kafka_server, prefix)
    for group in ("mailer", "audit"):
        bus.subscribe(group, [TOPIC], each(collector(group)))
    await bus.start()
    try:
        await bus.publish([Message(TOPIC, "same-key", thing("same-key", n)) for n in range(20)])
        await wait_until(lambda: sum(map(len, got.values())) >= 40, what="both groups")
    finally:
        await bus.stop()
    assert got == {"mailer": list(range(20)), "audit": list(range(20))}


@pytest.mark.real
async def test_every_listener_hears_every_event_from_its_window_on_and_has_the_past_at_start(
    kafka_server: Broker, prefix: str
) -> None:
    """Two replicas listen to one topic in no group: each hears every event, beginning with
    those of its replay window (an older one is not replayed), and has heard the past once
    `start` returns. A listener's failure is logged and listening goes on."""
    writer = make_bus(kafka_server, prefix, topics=[TOPIC])
    await writer.start()  # creates the topic
    producer = AIOKafkaProducer(bootstrap_servers=kafka_server.address)
    await producer.start()
    try:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        for n, age_seconds in ((0, 7200), (1, 30), (2, 5)):
            await producer.send_and_wait(
                writer.topic(TOPIC),
                thing("k", n).to_bytes(),
                key=b"k",
                timestamp_ms=now_ms - age_seconds * 1000,
            )
    finally:
        await producer.stop()

    heard: dict[str, list[int]] = defaultdict(list)
    replicas = []
    for replica in ("one", "two"):

        async def listen(events: Sequence[CloudEvent], replica: str = replica) -> None:
            heard[replica].extend(event.data["n"] for event in events)
            if replica == "two" and 3 in heard[replica] and 4 not in heard[replica]:
                raise RuntimeError("a listener's own trouble")

        bus = make_bus(kafka_server, prefix)
        bus.listen([TOPIC], listen, replay_seconds=3600)
        replicas.append(bus)
    try:
        for bus in replicas:
            await bus.start()
        assert heard == {"one": [1, 2], "two": [1, 2]}  # the past, before start returned
        await writer.publish([Message(TOPIC, "k", thing("k", 3))])
        await writer.publish([Message(TOPIC, "k", thing("k", 4))])
        await wait_until(lambda: all(len(h) == 4 for h in heard.values()), what="both replicas")
    finally:
        for bus in (*replicas, writer):
            await bus.stop()
    assert heard == {"one": [1, 2, 3, 4], "two": [1, 2, 3, 4]}


@pytest.mark.real
async def test_a_bus_stopped_right_after_handling_has_committed_what_it_handled(
    kafka_server: Broker, prefix: str
) -> None:
    """The last fetch's offsets are committed while the consumer waits for the next fetch;
    stopping then lets that commit finish before the consumer closes."""
    got: list[CloudEvent] = []
    all_handled = asyncio.Event()

    async def record(events: Sequence[CloudEvent]) -> None:
        got.extend(events)
        if len(got) == 30:
            all_handled.set()

    bus = make_bus(kafka_server, prefix)
    bus.subscribe("quick", [TOPIC], record)
    await bus.start()
    try:
        await bus.publish([Message(TOPIC, f"k{n}", thing(f"k{n}", n)) for n in range(30)])
        await asyncio.wait_for(all_handled.wait(), 30)
    finally:
        await bus.stop()  # at once: the last commit has only just been sent
    assert await group_caught_up(kafka_server, bus.topic("quick"), bus.topic(TOPIC))


@pytest.mark.real
async def test_a_publish_before_start_waits_for_it(kafka_server: Broker, prefix: str) -> None:
    got: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        got.append(event)

    bus = make_bus(kafka_server, prefix)
    bus.subscribe("early", [TOPIC], each(record))
    early = asyncio.create_task(bus.publish([Message(TOPIC, "k", thing("k", 1))]))
    await asyncio.sleep(0)
    assert not early.done()
    await bus.start()
    try:
        await asyncio.wait_for(early, 10)
        await wait_until(lambda: len(got) == 1, what="the early event")
    finally:
        await bus.stop()


@pytest.mark.real
async def test_publishing_nothing_is_a_no_op(kafka_server: Broker, prefix: str) -> None:
    bus = make_bus(kafka_server, prefix)
    await bus.start()
    try:
        await asyncio.wait_for(bus.publish([]), 5)
    finally:
        await bus.stop()


@pytest.mark.real
async def test_a_failing_handler_gets_the_same_record_again_before_the_next(
    kafka_server: Broker, prefix: str
) -> None:
    attempts: list[int] = []

    async def flaky(event: CloudEvent) -> None:
        attempts.append(event.data["n"])
        if attempts.count(0) < 3:
            raise RuntimeError("database away")

    bus = make_bus(kafka_server, prefix)
    bus.subscribe("flaky", [TOPIC], each(flaky))
    await bus.start()
    try:
        await bus.publish([Message(TOPIC, "k", thing("k", n)) for n in range(3)])
        await wait_until(lambda: attempts[-1:] == [2], what="the last event")
    finally:
        await bus.stop()
    assert attempts == [0, 0, 0, 1, 2]


@pytest.mark.real
async def test_a_consumer_restarted_before_committing_gets_the_event_again_and_applies_it_once(
    kafka_server: Broker, prefix: str, database: Callable[[str], Awaitable[Database]]
) -> None:
    db = await database("consumer")
    event = CloudEvent.wrap(registered("once@example.com"), subject="u1")
    crashed = asyncio.Event()

    first = make_bus(kafka_server, prefix)
    dispatcher = make_dispatcher(greeter(), db, first)

    async def apply_then_hang(event: CloudEvent) -> None:
        await dispatcher.handle([event])  # the effect and the inbox row commit here
        crashed.set()
        await asyncio.Event().wait()  # the process "dies" before the offset is committed

    first.subscribe("greeter", [TOPIC], each(apply_then_hang))
    await first.start()
    try:
        await first.publish([Message(TOPIC, "u1", event)])
        await asyncio.wait_for(crashed.wait(), 30)
    finally:
        await first.stop()

    second = make_bus(kafka_server, prefix)
    again = make_dispatcher(greeter(), db, second)
    again.subscribe()
    duplicates = again.metrics.events_handled.labels("test", "greeter", "duplicate")
    await second.start()
    try:
        await wait_until(lambda: duplicates._value.get() == 1, what="the redelivery")
    finally:
        await second.stop()
    assert await effects(db) == (1, 1)


@pytest.mark.real
async def test_a_record_that_is_not_a_cloudevent_goes_to_the_dead_letter_topic(
    kafka_server: Broker, prefix: str
) -> None:
    handled: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        handled.append(event)

    bus = make_bus(kafka_server, prefix)
    bus.subscribe("reader", [TOPIC], each(record))
    await bus.start()
    try:
        raw = AIOKafkaProducer(bootstrap_servers=kafka_server.address)
        await raw.start()
        try:
            await raw.send_and_wait(
                bus.topic(TOPIC), b"{not json", key=b"k", headers=[("origin", b"test")]
            )
        finally:
            await raw.stop()
        good = thing("k", 1)
        await bus.publish([Message(TOPIC, "k", good)])  # same key: behind the garbage
        await wait_until(lambda: len(handled) == 1, what="the good event")
        await wait_until(
            lambda: group_caught_up(kafka_server, bus.topic("reader"), bus.topic(TOPIC)),
            what="the offsets past both records",
        )
    finally:
        await bus.stop()
    assert handled[0].id == good.id
    (letter,) = await read_topic(kafka_server, bus.topic(f"{TOPIC}.dlq"))
    headers = dict(letter.headers)
    assert (letter.key, letter.value, headers["origin"]) == (b"k", b"{not json", b"test")
    assert headers["dlqconsumer"] == b"reader"
    assert headers["dlqreason"].startswith(b"not a CloudEvent")


@pytest.mark.real
async def test_readiness_follows_the_broker_and_publishing_fails_fast_while_it_is_away(
    kafka_server: Broker, prefix: str
) -> None:
    bus = make_bus(kafka_server, prefix, publish_timeout=2.0)
    assert not await bus.ready()  # not started
    await bus.start()
    try:
        assert await bus.ready()
        await asyncio.to_thread(kafka_server.stop)
        try:
            assert not await bus.ready()
            started = asyncio.get_running_loop().time()
            with pytest.raises(KafkaError):
                await bus.publish([Message(TOPIC, "k", thing("k", 1))])
            assert asyncio.get_running_loop().time() - started < 5
        finally:
            await asyncio.to_thread(kafka_server.start)
        await wait_until(bus.ready, what="readiness after the restart")
        await bus.publish([Message(TOPIC, "k", thing("k", 2))])
    finally:
        await bus.stop()


@pytest.mark.real
async def test_stopping_while_the_broker_is_away_does_not_hang(
    kafka_server: Broker, prefix: str
) -> None:
    bus = make_bus(kafka_server, prefix, publish_timeout=1.0)
    bus.subscribe("idle", [TOPIC], lambda event: asyncio.sleep(0))
    await bus.start()
    await asyncio.to_thread(kafka_server.stop)
    try:
        with pytest.raises(KafkaError):
            await bus.publish([Message(TOPIC, "k", thing("k", 1))])  # left queued
        async with asyncio.timeout(10):
            await bus.stop()
    finally:
        await asyncio.to_thread(kafka_server.start)


@pytest.mark.real
@pytest.mark.timeout(240)
async def test_every_committed_event_is_handled_once_across_a_broker_restart(
    kafka_server: Broker,
    prefix: str,
    database: Callable[[str], Awaitable[Database]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer_db, consumer_db = await database("producer"), await database("consumer")
    bus = make_bus(kafka_server, prefix, topics=[TOPIC], publish_timeout=2.0)
    make_dispatcher(greeter(), consumer_db, bus).subscribe()
    outbox = Outbox(tables.outbox)
    relay = OutboxRelay(
        outbox=outbox, database=producer_db, bus=bus, metrics=Metrics("test"), poll_seconds=0.1
    )
    failed_publishes: list[BaseException] = []
    publish = bus.publish

    async def watched_publish(messages: Sequence[Message]) -> None:
        try:
            await publish(messages)
        except Exception as exc:
            failed_publishes.append(exc)
            raise

    monkeypatch.setattr(bus, "publish", watched_publish)
    written: list[str] = []
    writing = True

    async def write() -> None:
        """One committed transaction per event, every 20 ms, across the outage."""
        while writing:
            async with producer_db.sessions() as session, session.begin():
                n = len(written)
                await outbox.add(session, registered(f"{n}@example.com"), subject=f"u{n % 7}")
            written.append(f"{n}@example.com")
            await asyncio.sleep(0.02)

    async def handled(n: int) -> bool:
        return (await effects(consumer_db))[0] >= n

    await bus.start()
    relay_task = asyncio.create_task(relay.run())
    writer = asyncio.create_task(write())
    try:
        await wait_until(lambda: len(written) >= 20, what="events before the outage")
        await wait_until(lambda: handled(10), what="events handled")
        await asyncio.to_thread(kafka_server.stop)
        try:
            await wait_until(lambda: bool(failed_publishes), what="a failed publish")
            during = len(written)
            await wait_until(lambda: len(written) >= during + 20, what="events during the outage")
        finally:
            await asyncio.to_thread(kafka_server.start)
        after = len(written)
        await wait_until(lambda: len(written) >= after + 20, what="events after the outage")
        writing = False
        await writer
        total = len(written)
        await wait_until(lambda: handled(total), within=120, what=f"{total} effects")
        await wait_until(
            lambda: group_caught_up(kafka_server, bus.topic("greeter"), bus.topic(TOPIC)),
            within=60,
            what="the consumer's committed offsets",
        )
    finally:
        writing = False
        relay_task.cancel()
        await asyncio.gather(writer, relay_task, return_exceptions=True)
        await bus.stop()
    assert await effects(consumer_db) == (total, total)
    async with consumer_db.sessions() as session:
        emails = set((await session.scalars(select(greetings.c.email))).all())
    assert emails == set(written)
