"""Analytics on PostgreSQL and Kafka: how fast it drains a backlog against a bare consumer
reading the same backlog, event-to-figure latency at a paced 1,000 progress events/s, and
reading a workshop's figures with 1,000 and with 1,000,000 progress events behind it.

A real `sukverse serve analytics` (cluster mode, migrated first) consumes what this
process publishes to Kafka as the workshop service would: one topic, each event keyed by
its enrollment. Event-to-figure latency is measured on a probe: a workshop of one student
whose progress events go out among the load, on the same topic, and whose figure
(`completion_percent` of `GET /analytics/workshops/{id}`) is polled until it shows the
event; so it is publish, broker, consumer queue, handler, commit and the HTTP read, all of
it. The 1,000,000 events behind the large workshop are handled in this process by the
service's own dispatcher and handlers (`InboxDispatcher.handle` with the analytics
consumer, the code path of the consumer process) against the same database, in batches
as Kafka would hand them over and several transactions at a time, as several partitions
would; only the broker hop is skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.auth import Row
from benchmarks.harness import (
    create_database,
    data_dir,
    free_port,
    hack_server,
    http_json,
    paced_latencies,
    percentile,
    process,
    sukverse,
    wait_ready,
)
from benchmarks.workshop import ADMIN, login
from sukverse_analytics.domain import FULL, from_milli
from sukverse_analytics.events import consumer as analytics_consumer
from sukverse_analytics.models import messaging
from sukverse_common.db import Database, create_engine
from sukverse_common.events.bus import Message
from sukverse_common.events.contracts import (
    EnrollmentCreated,
    EventData,
    StepCompleted,
    SubstepCompleted,
    WorkshopCreated,
)
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.inbox import InboxDispatcher
from sukverse_common.events.kafka import KafkaBus
from sukverse_common.events.outbox import Outbox
from sukverse_common.logs import configure_logging
from sukverse_common.metrics import Metrics

PREFIX = "bench."
PARTITIONS = 3  # KafkaBus's default, which made the topic
TOPIC = SubstepCompleted.topic()
WORKSHOPS, STUDENTS, SUBSTEPS = 4, 500, 200  # the live load: 2,000 students in 4 workshops
SUBSTEPS_PER_STEP = 10
BACKLOG = 30_000
RATE, SECONDS = 1_000, 30
BATCH_EVERY = 0.01  # the paced producer sends RATE * BATCH_EVERY events at a time
PROBE_EVERY, POLL_EVERY = 0.25, 0.02
LOOK_EVERY = 0.02  # the closest looks at the handled count (`Analytics.wait_handled`)
PROBE_SUBSTEPS = 100_000
READ_STUDENTS, READ_SUBSTEPS = 500, 2_200  # the cohort and length of the read workshops
SMALL_EVENTS, LARGE_EVENTS = 1_000, 1_000_000
WIDE_STUDENTS = 5_000  # a third workshop: ten times the cohort, one event each
HANDLE_BATCH = 500  # KafkaBus's fetch size
FEEDERS = 4
TIMEOUT = 600.0
HANDLED = re.compile(
    r'^sukverse_events_handled_total\{[^}]*consumer="analytics"[^}]*\} (\S+)$', re.M
)
START = datetime.now(UTC) - timedelta(hours=1)  # so that no one is idle long enough to be at risk


@dataclass
class Workshop:
    """A workshop and its enrolled students, with each student's progress so far."""

    workshop_id: uuid.UUID
    substep_count: int
    students: list[tuple[uuid.UUID, uuid.UUID]]  # (user id, enrollment id)
    done: list[int]
    steps: list[uuid.UUID]

    @classmethod
    def new(cls, students: int, substep_count: int) -> Workshop:
        steps = -(-substep_count // SUBSTEPS_PER_STEP)
        return cls(
            uuid.uuid4(),
            substep_count,
            [(uuid.uuid4(), uuid.uuid4()) for _ in range(students)],
            [0] * students,
            [uuid.uuid4() for _ in range(steps)],
        )

    def setup(self, title: str) -> list[tuple[EventData, str]]:
        """Its creation and its students' enrollments."""
        events: list[tuple[EventData, str]] = [
            (
                WorkshopCreated(
                    workshop_id=self.workshop_id,
                    title=title,
                    instructor_ids=[],
                    step_count=len(self.steps),
                    substep_count=self.substep_count,
                    created_by=None,
                    created_at=START,
                ),
                str(self.workshop_id),
            )
        ]
        for user_id, enrollment_id in self.students:
            enrolled = EnrollmentCreated(
                enrollment_id=enrollment_id,
                workshop_id=self.workshop_id,
                user_id=user_id,
                enrolled_by=None,
                enrolled_at=START,
            )
            events.append((enrolled, str(enrollment_id)))
        return events

    def progress(self, student: int, at: datetime) -> list[tuple[EventData, str]]:
        """The student's next substep, and its step when that substep ends one."""
        user_id, enrollment_id = self.students[student]
        self.done[student] = done = min(self.done[student] + 1, self.substep_count)
        step = self.steps[(done - 1) // SUBSTEPS_PER_STEP]
        substep = SubstepCompleted(
            enrollment_id=enrollment_id,
            workshop_id=self.workshop_id,
            user_id=user_id,
            step_id=step,
            substep_id=uuid.uuid5(step, str(done)),
            substeps_done=done,
            substep_count=self.substep_count,
            completed_at=at,
        )
        events: list[tuple[EventData, str]] = [(substep, str(enrollment_id))]
        if done % SUBSTEPS_PER_STEP == 0:
            finished = StepCompleted(
                enrollment_id=enrollment_id,
                workshop_id=self.workshop_id,
                user_id=user_id,
                step_id=step,
                completed_at=at,
            )
            events.append((finished, str(enrollment_id)))
        return events


def load(workshops: Sequence[Workshop]) -> Iterator[tuple[EventData, str]]:
    """Progress of students across the workshops in turn, without end."""
    n = 0
    while True:
        workshop = workshops[n % len(workshops)]
        student = (n // len(workshops)) % len(workshop.students)
        yield from workshop.progress(student, START + timedelta(milliseconds=n))
        n += 1


def progress_of(workshop: Workshop, students: Sequence[int]) -> Iterator[tuple[EventData, str]]:
    """Progress of some of a workshop's students in turn, without end."""
    n = 0
    while True:
        yield from workshop.progress(students[n % len(students)], START + timedelta(milliseconds=n))
        n += 1


def messages(events: Sequence[tuple[EventData, str]]) -> list[Message]:
    return [Message(data.topic(), key, CloudEvent.wrap(data, subject=key)) for data, key in events]


def take(source: Iterator[tuple[EventData, str]], count: int) -> list[tuple[EventData, str]]:
    return [next(source) for _ in range(count)]


class Analytics:
    """The analytics process seen from outside: its bus, its HTTP API and its metrics."""

    def __init__(self, url: str, headers: dict[str, str], bus: KafkaBus) -> None:
        self.url = url
        self.headers = headers
        self.bus = bus
        self.published = 0

    async def __aenter__(self) -> Analytics:
        self.http = aiohttp.ClientSession(self.url, headers=self.headers)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.close()

    async def publish(self, batch: Sequence[Message]) -> None:
        await self.bus.publish(batch)
        self.published += len(batch)

    async def handled(self) -> int:
        async with self.http.get("/metrics") as response:
            text = await response.text()
        return round(sum(float(value) for value in HANDLED.findall(text)))

    async def wait_handled(self, count: int) -> float:
        """Until the service has handled `count` events; when it had (time.monotonic()): to
        within 20 ms, unless the rate more than doubles at the end.

        Each look renders the service's metrics, which costs it CPU: a look every 20 ms
        took a tenth of it through a drain. So the next look is half the time the rest
        should take at the rate seen between the last two, and 20 ms apart only near the
        end: a few looks a measure, however long it runs."""
        deadline = time.monotonic() + TIMEOUT
        last: tuple[float, int] | None = None
        while (seen := await self.handled()) < count:
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"analytics handled {seen} of {count} events")
            wait = LOOK_EVERY
            if last is not None and seen > last[1]:
                rate = (seen - last[1]) / (now - last[0])
                wait = max(LOOK_EVERY, (count - seen) / rate / 2)
            last = (now, seen)
            await asyncio.sleep(wait)
        return time.monotonic()

    async def figures(self, workshop_id: uuid.UUID) -> dict[str, Any]:
        async with self.http.get(f"/analytics/workshops/{workshop_id}") as response:
            if response.status != 200:
                raise RuntimeError(f"figures answered {response.status}")
            body: dict[str, Any] = await response.json()
            return body


async def drain(service: Analytics, source: Iterator[tuple[EventData, str]], count: int) -> float:
    """Events/s of the service working off a backlog published as fast as the bus goes."""
    batch = messages(take(source, count))
    started = time.monotonic()
    for start in range(0, len(batch), HANDLE_BATCH):
        await service.publish(batch[start : start + HANDLE_BATCH])
    done = await service.wait_handled(service.published)
    return len(batch) / (done - started)


async def bare_drain(bootstrap: str) -> float:
    """Events/s of a bare aiokafka consumer group reading the whole topic (every event the
    service was sent) and committing each fetch, as the service's consumer does."""
    group = f"bare-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        topic = PREFIX + TOPIC
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        end = sum((await consumer.end_offsets(partitions)).values())
        seen, started = 0, time.monotonic()
        while seen < end:
            batches = await consumer.getmany(timeout_ms=1000, max_records=HANDLE_BATCH)
            seen += sum(len(records) for records in batches.values())
            if batches:
                await consumer.commit()
        return seen / (time.monotonic() - started)
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Sustained:
    rate: float  # handled events/s over the paced window
    sent_rate: float
    lag_at_end: int  # events published but not handled when the paced producer stopped
    caught_up_seconds: float  # from then until every event was handled
    latencies: list[float]  # event-to-figure, ms


async def sustained(service: Analytics, source: Iterator[tuple[EventData, str]]) -> Sustained:
    """Publish RATE events/s for SECONDS and probe event-to-figure latency meanwhile."""
    probe = Workshop.new(1, PROBE_SUBSTEPS)
    await service.publish(messages(probe.setup("Probe")))
    await service.wait_handled(service.published)
    per_batch = round(RATE * BATCH_EVERY)
    batches = [messages(take(source, per_batch)) for _ in range(round(SECONDS / BATCH_EVERY))]
    latencies: list[float] = []
    pending: list[tuple[float, float]] = []  # (figure awaited, when its event was published)
    stop = asyncio.Event()

    async def probing() -> None:
        """Every PROBE_EVERY a probe event; one poll of the figure every POLL_EVERY
        settles every probe the figure has reached."""

        async def send() -> None:
            data, key = probe.progress(0, datetime.now(UTC))[0]
            assert isinstance(data, SubstepCompleted)
            expected = from_milli(FULL * data.substeps_done // PROBE_SUBSTEPS)
            pending.append((expected, time.perf_counter()))
            await service.publish(messages([(data, key)]))

        loop = asyncio.get_running_loop()
        started, sent, senders = loop.time(), 0, set()
        while not stop.is_set() or pending:
            if not stop.is_set() and loop.time() >= started + sent * PROBE_EVERY:
                task = asyncio.create_task(send())
                senders.add(task)
                task.add_done_callback(senders.discard)
                sent += 1
            if pending:
                shown = (await service.figures(probe.workshop_id))["completion_percent"]
                now = time.perf_counter()
                for expected, at in [item for item in pending if item[0] <= shown]:
                    latencies.append((now - at) * 1000)
                    pending.remove((expected, at))
                if pending and now - pending[0][1] > TIMEOUT:
                    raise RuntimeError("a probe event did not reach its figure")
            await asyncio.sleep(POLL_EVERY)

    prober = asyncio.create_task(probing())
    loop = asyncio.get_running_loop()
    handled_before = await service.handled()
    started = loop.time()
    for n, batch in enumerate(batches):
        await service.publish(batch)
        await asyncio.sleep(max(0.0, started + (n + 1) * BATCH_EVERY - loop.time()))
    elapsed = loop.time() - started
    handled_after = await service.handled()
    published, stopped = service.published, time.monotonic()
    stop.set()
    await prober
    caught_up = await service.wait_handled(published)
    return Sustained(
        rate=(handled_after - handled_before) / elapsed,
        sent_rate=sum(len(batch) for batch in batches) / elapsed,
        lag_at_end=max(0, published - handled_after),
        caught_up_seconds=caught_up - stopped,
        latencies=latencies,
    )


async def in_process(database_url: str, bus: KafkaBus, workshop: Workshop, events: int) -> float:
    """Handle `events` progress events of a workshop (its students in turn) through the
    analytics consumer's dispatcher against the service's database, FEEDERS transactions
    at a time on disjoint students; events/s."""
    database = Database(create_engine(database_url, pool_size=FEEDERS))
    dispatcher = InboxDispatcher(
        consumer=analytics_consumer,
        database=database,
        inbox=messaging.inbox,
        outbox=Outbox(messaging.outbox),
        bus=bus,
        metrics=Metrics("bench"),
    )

    async def feed(feeder: int) -> None:
        students = range(feeder, len(workshop.students), FEEDERS)
        source = progress_of(workshop, students)
        share, handled = events // FEEDERS + (feeder < events % FEEDERS), 0
        while handled < share:
            batch = take(source, min(HANDLE_BATCH, share - handled))
            await dispatcher.handle([message.event for message in messages(batch)])
            handled += len(batch)

    try:
        setup = workshop.setup("Read")
        for start in range(0, len(setup), HANDLE_BATCH):
            batch = setup[start : start + HANDLE_BATCH]
            await dispatcher.handle([message.event for message in messages(batch)])
        started = time.monotonic()
        await asyncio.gather(*(feed(feeder) for feeder in range(FEEDERS)))
        return events / (time.monotonic() - started)
    finally:
        await database.dispose()


def sizes() -> dict[str, tuple[int, int]]:
    """Read workshops: name -> (students, progress events behind it)."""
    return {
        "small": (READ_STUDENTS, SMALL_EVENTS),
        "large": (READ_STUDENTS, LARGE_EVENTS),
        "wide": (WIDE_STUDENTS, WIDE_STUDENTS),
    }


async def measure(
    url: str, headers: dict[str, str], bootstrap: str, database_url: str
) -> dict[str, Any]:
    bus = KafkaBus(
        bootstrap_servers=bootstrap, topic_prefix=PREFIX, topics=[TOPIC], partitions=PARTITIONS
    )
    await bus.start()
    try:
        async with Analytics(url, headers, bus) as service:
            live = [Workshop.new(STUDENTS, SUBSTEPS) for _ in range(WORKSHOPS)]
            for n, workshop in enumerate(live):
                await service.publish(messages(workshop.setup(f"Workshop {n}")))
            await service.wait_handled(service.published)
            source = load(live)
            await drain(service, source, BACKLOG // 6)  # warms the consumer and database up
            drained = await drain(service, source, BACKLOG)
            bare = await bare_drain(bootstrap)
            paced = await sustained(service, source)

            reads: dict[str, tuple[list[float], float, dict[str, Any]]] = {}
            for name, (students, events) in sizes().items():
                workshop = Workshop.new(students, READ_SUBSTEPS)
                rate = await in_process(database_url, bus, workshop, events)
                await service.figures(workshop.workshop_id)
                latencies = await paced_latencies(
                    f"{url}/analytics/workshops/{workshop.workshop_id}",
                    headers=headers,
                    rate=20,
                    seconds=10,
                )
                reads[name] = (latencies, rate, await service.figures(workshop.workshop_id))
    finally:
        await bus.stop()
    return {"drained": drained, "bare": bare, "paced": paced, "reads": reads}


def run() -> list[Row]:
    configure_logging("WARNING")
    with (
        data_dir() as path,
        hack_server("postgres.sh", path / "pg") as dsn,
        hack_server("kafka.sh", path / "kafka") as bootstrap,
    ):
        database = asyncio.run(create_database(dsn, "analytics"))
        auth_port, port = free_port(), free_port()
        auth_url, url = f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{port}"
        common = {"SUKVERSE_DATA_DIR": str(path), "SUKVERSE_LOG_LEVEL": "WARNING"}
        auth_env = {
            **common,
            "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
            "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
            "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
            "SUKVERSE_ARGON2_TIME_COST": "1",
        }
        env = {
            **common,
            "SUKVERSE_MODE": "cluster",
            "SUKVERSE_AUTH_URL": auth_url,
            "SUKVERSE_BUS": "kafka",
            "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SUKVERSE_KAFKA_TOPIC_PREFIX": PREFIX,
            "SUKVERSE_DATABASE_URL": database,
        }
        subprocess.run(
            sukverse("migrate", "analytics"),
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        with (
            process(sukverse("serve", "auth", "--port", str(auth_port)), env=auth_env) as auth,
            process(sukverse("serve", "analytics", "--port", str(port)), env=env) as svc,
        ):
            wait_ready(f"{auth_url}/readyz", auth)
            wait_ready(f"{url}/readyz", svc)
            admin = {"Authorization": f"Bearer {login(auth_url, ADMIN)['access_token']}"}
            http_json("GET", f"{url}/healthz")
            found = asyncio.run(
                measure(
                    url,
                    admin,
                    bootstrap,
                    "postgresql+asyncpg://" + database.removeprefix("postgresql://"),
                )
            )
    return rows(found)


def rows(found: dict[str, Any]) -> list[Row]:
    drained, bare, paced = found["drained"], found["bare"], found["paced"]
    p99 = percentile(paced.latencies, 99)
    result = [
        Row(
            f"analytics draining a {BACKLOG:,}-event backlog (events/s)",
            f"{drained:.0f}",
            f"bare aiokafka consumer group {bare:.0f} events/s",
            f"{drained / bare:.0%}",
            f">= {RATE:,}",
            drained >= RATE,
        ),
        Row(
            f"handled at a paced {paced.sent_rate:.0f} events/s for {SECONDS} s (events/s)",
            f"{paced.rate:.0f}",
            f"lag {paced.lag_at_end} events at the end, caught up in "
            f"{paced.caught_up_seconds:.1f} s",
            f"{paced.rate / paced.sent_rate:.0%}",
            ">= 99%",
            paced.rate >= 0.99 * paced.sent_rate,
        ),
        Row(
            f"event-to-figure p99 at that rate, {len(paced.latencies)} probes (ms)",
            f"{p99:.0f}",
            f"p50 {percentile(paced.latencies, 50):.0f} ms",
            "-",
            "< 1000",
            p99 < 1000,
        ),
    ]
    for name, (_, events) in sizes().items():
        latencies, rate, figures = found["reads"][name]
        p50 = percentile(latencies, 50)
        result.append(
            Row(
                f"GET /analytics/workshops/{{id}}, {events:,} progress events of "
                f"{figures['enrolled']:,} students behind it, p50 (ms)",
                f"{p50:.1f}",
                f"p99 {percentile(latencies, 99):.1f} ms; fed in-process at {rate:.0f} events/s; "
                f"{figures['completion_percent']:g}% done",
                "-",
                "< 20",
                p50 < 20,
            )
        )
    return result


if __name__ == "__main__":
    configure_logging("WARNING")
    for row in run():
        print(row)
    sys.stdout.flush()
    os._exit(0)
