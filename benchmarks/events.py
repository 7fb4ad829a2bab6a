"""Events on Kafka: outbox → relay → KafkaBus → inbox against a raw aiokafka loop, and latency.

The producing side (outbox writes and the relay) runs in this process and the consuming side
in a child process, as two services would; each side has its own SQLite database and, once
started, freezes its start-up objects as `sukverse serve` does. The raw loop is a bare program
of its own (`benchmarks.raw_kafka`). Times are `time.monotonic()`, one clock for all processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table

from benchmarks.auth import Row
from benchmarks.harness import ROOT, create_database, data_dir, hack_server, percentile
from sukverse_common import tracing
from sukverse_common.app import freeze_startup_objects
from sukverse_common.db import Database, create_engine
from sukverse_common.events.bus import Message
from sukverse_common.events.contracts import UserRegistered
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.inbox import EventConsumer, EventContext, InboxDispatcher
from sukverse_common.events.kafka import MAX_BATCH_BYTES, KafkaBus
from sukverse_common.events.outbox import Outbox, OutboxRelay, messaging_tables
from sukverse_common.logs import configure_logging
from sukverse_common.metrics import Metrics

RAW_EVENTS = 50_000
PIPELINE_EVENTS = 50_000
ROUNDS = 5  # the pipelines' rounds spread by several points: a median of three moved with one
EVENTS_PER_TRANSACTION = 100
RELAY_BATCH = 500  # OutboxRelay's default batch_size
PACED_RATE = 500
PACED_SECONDS = 10
TOPIC = UserRegistered.topic()
TIMEOUT = 300.0

metadata = MetaData()
tables = messaging_tables(metadata)
greetings = Table(
    "greetings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(100), nullable=False),
)

# Event id (as an integer) -> when its handler returned. The bookkeeping of the benchmark
# itself should cost the processes it measures as little as it can: a dict of numbers is left
# out of garbage collection, one of 50,000 UUIDs would be walked by every full collection.
Handled = dict[int, float]


def registered() -> UserRegistered:
    user_id = uuid.uuid4()
    return UserRegistered(
        user_id=user_id,
        email=f"{user_id.hex[:12]}@example.com",
        full_name="Benchmark User",
        roles=["student"],
        registered_at=datetime.now(UTC),
    )


@dataclass(frozen=True)
class Databases:
    """The two services' database URLs: the producer's outbox and the consumer's inbox."""

    producer: str
    consumer: str


def sqlite_databases(name: str) -> Databases:
    """Embedded-style SQLite files, one per side."""
    return Databases(
        producer=f"sqlite:///{Path(name).with_suffix('.producer.db')}",
        consumer=f"sqlite:///{Path(name).with_suffix('.consumer.db')}",
    )


async def postgres_databases(dsn: str, name: str) -> Databases:
    """Two new databases on the PostgreSQL server, as a cluster gives each service its own."""
    tag = Path(name).name
    producer, consumer = [
        await create_database(dsn, f"{tag}_{side}") for side in ("producer", "consumer")
    ]
    return Databases(producer=producer, consumer=consumer)


async def open_database(url: str) -> Database:
    database = Database(create_engine(url))
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return database


# -- the consuming side, in a child process ---------------------------------------------------


def consume(
    kind: str,
    bootstrap: str,
    name: str,
    database: str,
    expected: int,
    warm: Event,
    results: Connection,
) -> None:
    """Child process: consume `expected` events (after one warm-up) and send back `Handled`.
    Traced as a service would be when the environment names an OTLP endpoint."""
    configure_logging("WARNING")
    tracing.configure("bench-consumer", "0")
    if kind == "bus":
        handled = asyncio.run(bus_consumer(bootstrap, name, expected, warm))
    else:
        effect = kind == "inbox+effect"
        handled = asyncio.run(
            inbox_consumer(bootstrap, name, database, expected, warm, effect=effect)
        )
    tracing.shutdown()
    results.send(handled)


async def bus_consumer(bootstrap: str, name: str, expected: int, warm: Event) -> Handled:
    """A KafkaBus subscription whose handler does nothing: the bus's own cost."""
    bus = KafkaBus(bootstrap_servers=bootstrap, topic_prefix=f"{Path(name).name}.")
    handled: Handled = {}
    done = asyncio.Event()

    async def handle(events: Sequence[CloudEvent]) -> None:
        now = time.monotonic()
        for event in events:
            handled[event.id.int] = now
        warm.set()
        if len(handled) > expected:
            done.set()

    bus.subscribe("noop", [TOPIC], handle)
    await bus.start()
    freeze_startup_objects()  # as `sukverse serve` does once it is ready
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT)
    finally:
        await bus.stop()
    return handled


async def inbox_consumer(
    bootstrap: str, name: str, url: str, expected: int, warm: Event, *, effect: bool = False
) -> Handled:
    """A consuming service: KafkaBus → InboxDispatcher on its database, recording each event
    in its inbox; with `effect`, its handler also inserts a row per event."""
    database = await open_database(url)
    bus = KafkaBus(bootstrap_servers=bootstrap, topic_prefix=f"{Path(name).name}.")
    consumer = EventConsumer("greeter")

    @consumer.on(UserRegistered)
    async def greet(ctx: EventContext, data: UserRegistered) -> None:
        if effect:
            await ctx.session.execute(greetings.insert().values(email=data.email))

    dispatcher = InboxDispatcher(
        consumer=consumer,
        database=database,
        inbox=tables.inbox,
        outbox=Outbox(tables.outbox),
        bus=bus,
        metrics=Metrics("bench"),
    )
    handled: Handled = {}
    done = asyncio.Event()

    async def handle(events: Sequence[CloudEvent]) -> None:
        await dispatcher.handle(events)
        now = time.monotonic()
        for event in events:
            handled[event.id.int] = now
        warm.set()
        if len(handled) > expected:
            done.set()

    bus.subscribe(consumer.name, consumer.topics, handle)
    await bus.start()
    freeze_startup_objects()  # as `sukverse serve` does once it is ready
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT)
    finally:
        await bus.stop()
        await database.dispose()
    return handled


@asynccontextmanager
async def consumer_process(
    kind: str, bootstrap: str, name: str, expected: int, database: str = ""
) -> AsyncIterator[tuple[Event, Connection]]:
    """Start the consuming side (on `database`, but for the bare bus); yields its warm-up
    event and the end of its result pipe."""
    context = multiprocessing.get_context("spawn")
    warm = context.Event()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=consume, args=(kind, bootstrap, name, database, expected, warm, sender)
    )
    child.start()
    try:
        yield warm, receiver
    except BaseException:
        child.kill()
        raise
    finally:
        await asyncio.to_thread(child.join, TIMEOUT)


async def wait_warm(warm: Event) -> None:
    """Until the consumer handled the warm-up event: its group is joined and fetching."""
    if not await asyncio.to_thread(warm.wait, TIMEOUT):
        raise RuntimeError("the consumer did not handle the warm-up event")


async def results(receiver: Connection) -> Handled:
    if not await asyncio.to_thread(receiver.poll, TIMEOUT):
        raise RuntimeError("the consumer did not finish")
    handled: Handled = receiver.recv()
    return handled


# -- the producing side, here ----------------------------------------------------------------


async def raw_loop(bootstrap: str, events: int, workdir: Path) -> float:
    """Events/s through a bare idempotent, acks=all producer and a consumer group
    (`benchmarks.raw_kafka`, in processes of its own), with the pipeline's payloads and the
    KafkaBus's record batch size: aiokafka's default would slow the baseline by a quarter."""
    payloads = workdir / f"raw-payloads-{events}.txt"
    if not payloads.exists():  # written once a run; each loop makes a topic of its own
        with payloads.open("w") as lines:
            for _ in range(events + 1):
                data = registered()
                event = CloudEvent.wrap(data, subject=str(data.user_id))
                lines.write(f"{event.subject.encode().hex()} {event.to_bytes().hex()}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.raw_kafka",
        bootstrap,
        str(payloads),
        str(events),
        str(MAX_BATCH_BYTES),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    if process.returncode != 0:
        raise RuntimeError(f"the raw Kafka loop failed with exit code {process.returncode}")
    return float(output.decode().split()[-1])


async def bus_throughput(bootstrap: str, name: str, events: int) -> float:
    """Events/s published through KafkaBus in relay-sized batches to a do-nothing handler."""
    messages = []
    for _ in range(events + 1):
        data = registered()
        messages.append(Message(TOPIC, str(data.user_id), CloudEvent.wrap(data, subject="x")))
    bus = KafkaBus(bootstrap_servers=bootstrap, topic_prefix=f"{Path(name).name}.", topics=[TOPIC])
    await bus.start()
    try:
        async with consumer_process("bus", bootstrap, name, events) as (warm, receiver):
            await bus.publish(messages[:1])
            await wait_warm(warm)
            started = time.monotonic()
            for start in range(1, events + 1, RELAY_BATCH):
                await bus.publish(messages[start : start + RELAY_BATCH])
            handled = await results(receiver)
    finally:
        await bus.stop()
    return events / (max(handled.values()) - started)


class ProducingService:
    """The producing service's outbox and its relay to a KafkaBus."""

    def __init__(self, bootstrap: str, name: str, url: str) -> None:
        self.bus = KafkaBus(
            bootstrap_servers=bootstrap, topic_prefix=f"{Path(name).name}.", topics=[TOPIC]
        )
        self.url = url
        self.outbox = Outbox(tables.outbox)

    async def __aenter__(self) -> ProducingService:
        self.database = await open_database(self.url)
        await self.bus.start()
        relay = OutboxRelay(
            outbox=self.outbox,
            database=self.database,
            bus=self.bus,
            metrics=Metrics("bench"),
            poll_seconds=1.0,
        )
        self.relay = asyncio.create_task(relay.run())
        freeze_startup_objects()  # as `sukverse serve` does once it is ready
        return self

    async def __aexit__(self, *_: object) -> None:
        self.relay.cancel()
        await asyncio.gather(self.relay, return_exceptions=True)
        await self.bus.stop()
        await self.database.dispose()

    async def commit(self, batch: Sequence[UserRegistered]) -> tuple[list[CloudEvent], float]:
        """Write a batch of events in one transaction; the events and when it committed."""
        async with self.database.sessions() as session, session.begin():
            events = [(data, str(data.user_id)) for data in batch]
            envelopes = await self.outbox.add_many(session, events)
        return envelopes, time.monotonic()


async def pipeline_throughput(
    bootstrap: str, name: str, events: int, consumer: str = "inbox", *, postgres: str = ""
) -> float:
    """Events/s from the first outbox commit to the last inbox commit, writing as it goes
    in transactions of `EVENTS_PER_TRANSACTION`; on SQLite files, or with `postgres` (a
    server's DSN) on two databases of that server."""
    # The events' data is made beforehand, as the raw loop's payloads are.
    batches = [
        [registered() for _ in range(EVENTS_PER_TRANSACTION)]
        for _ in range(events // EVENTS_PER_TRANSACTION)
    ]
    databases = await postgres_databases(postgres, name) if postgres else sqlite_databases(name)
    async with (
        consumer_process(consumer, bootstrap, name, events, databases.consumer) as (
            warm,
            receiver,
        ),
        ProducingService(bootstrap, name, databases.producer) as service,
    ):
        await service.commit([registered()])
        await wait_warm(warm)
        started = time.monotonic()
        for batch in batches:
            await service.commit(batch)
        handled = await results(receiver)
    return events / (max(handled.values()) - started)


async def paced_latencies(bootstrap: str, name: str) -> list[float]:
    """Commit-to-handled latencies (ms) of one-event transactions at `PACED_RATE`."""
    events = PACED_RATE * PACED_SECONDS
    committed: dict[int, float] = {}
    databases = sqlite_databases(name)
    async with (
        consumer_process("inbox", bootstrap, name, events, databases.consumer) as (
            warm,
            receiver,
        ),
        ProducingService(bootstrap, name, databases.producer) as service,
    ):
        await service.commit([registered()])
        await wait_warm(warm)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(events):
            [envelope], at = await service.commit([registered()])
            committed[envelope.id.int] = at
            await asyncio.sleep(max(0.0, start + (n + 1) / PACED_RATE - loop.time()))
        handled = await results(receiver)
    return [(handled[event_id] - at) * 1000 for event_id, at in committed.items()]


@dataclass(frozen=True)
class Round:
    """One round's pipeline throughput against the raw loop run just before it."""

    through: float
    raw: float

    @property
    def ratio(self) -> float:
        return self.through / self.raw


def median(rounds: list[Round]) -> tuple[Round, str]:
    """The round with the median ratio, and the span of the ratios."""
    ordered = sorted(rounds, key=lambda r: r.ratio)
    return ordered[len(ordered) // 2], f"{ordered[0].ratio:.1%} to {ordered[-1].ratio:.1%}"


def run() -> list[Row]:
    configure_logging("WARNING")
    with (
        data_dir() as path,
        hack_server("kafka.sh", path / "kafka") as bootstrap,
        hack_server("postgres.sh", path / "pg") as dsn,
    ):
        asyncio.run(raw_loop(bootstrap, RAW_EVENTS, path))  # warms the broker's JIT up
        # The raw loop and the pipelines in turn, ROUNDS times: the round with the median
        # ratio is reported, so one busy moment of a shared machine does not decide it.
        on_sqlite: list[Round] = []
        on_postgres: list[Round] = []
        for n in range(ROUNDS):
            raw_n = asyncio.run(raw_loop(bootstrap, RAW_EVENTS, path))
            name = str(path / f"th{n}")
            on_sqlite.append(
                Round(asyncio.run(pipeline_throughput(bootstrap, name, PIPELINE_EVENTS)), raw_n)
            )
            name = str(path / f"pg{n}")
            through_n = asyncio.run(
                pipeline_throughput(bootstrap, name, PIPELINE_EVENTS, postgres=dsn)
            )
            on_postgres.append(Round(through_n, raw_n))
        (sqlite, spread), (postgres, pg_spread) = median(on_sqlite), median(on_postgres)
        raw = sqlite.raw
        bus = asyncio.run(bus_throughput(bootstrap, str(path / "bus"), RAW_EVENTS))
        with_effect = asyncio.run(
            pipeline_throughput(bootstrap, str(path / "fx"), PIPELINE_EVENTS, "inbox+effect")
        )
        latencies = asyncio.run(paced_latencies(bootstrap, str(path / "paced")))
    p99 = percentile(latencies, 99)
    return [
        Row(
            "events through outbox → relay → Kafka → inbox, SQLite (events/s)",
            f"{sqlite.through:.0f}",
            f"raw aiokafka produce-and-consume loop {sqlite.raw:.0f} events/s; the median of "
            f"{ROUNDS} rounds, whose ratios spanned {spread}",
            f"{sqlite.ratio:.1%}",
            ">= 30%",
            sqlite.ratio >= 0.30,
        ),
        Row(
            "the same, each side on its own PostgreSQL database (events/s)",
            f"{postgres.through:.0f}",
            f"raw aiokafka produce-and-consume loop {postgres.raw:.0f} events/s; the median "
            f"of {ROUNDS} rounds, whose ratios spanned {pg_spread}",
            f"{postgres.ratio:.1%}",
            ">= 35%",
            postgres.ratio >= 0.35,
        ),
        Row(
            "the same, the handler inserting a row per event (events/s)",
            f"{with_effect:.0f}",
            f"raw aiokafka produce-and-consume loop {raw:.0f} events/s",
            f"{with_effect / raw:.0%}",
            "-",
            True,
        ),
        Row(
            "events through KafkaBus alone, no databases (events/s)",
            f"{bus:.0f}",
            f"raw aiokafka produce-and-consume loop {raw:.0f} events/s",
            f"{bus / raw:.0%}",
            "-",
            True,
        ),
        Row(
            f"commit-to-handled p99 at {PACED_RATE} events/s (ms)",
            f"{p99:.1f}",
            f"p50 {percentile(latencies, 50):.1f} ms",
            "-",
            "< 500",
            p99 < 500,
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
    os._exit(0)
