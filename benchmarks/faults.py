"""Progress writes at a steady rate while the Kafka broker is killed, or while the workshop
service's PostgreSQL is stopped: what the clients were answered, and where every event went.
tests/test_reliability.py runs both briefly; benchmarks/reliability.py at full length."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks.real_tier import ADMIN, Api, Cluster

PROBLEM = "application/problem+json"
SUBSTEP_EVENT = "io.sukverse.workshop.substep.completed.v1"


@dataclass(frozen=True)
class Answer:
    sent_at: float  # seconds from the start of the load
    status: int  # 0: no answer (connection refused, reset or timed out)
    problem: bool  # a problem+json body with a type and a title
    # The problem's type, for an error: what the service said it was.
    kind: str = ""


@dataclass
class Workload:
    """A workshop of 10 x 10 substeps and enrolled students enough that every write of the
    load is a first completion: write i is student i mod n's next substep."""

    workshop_id: str
    substeps: list[str]
    tokens: list[str]

    def write(self, i: int) -> tuple[str, dict[str, str]]:
        token = self.tokens[i % len(self.tokens)]
        substep = self.substeps[(i // len(self.tokens)) % len(self.substeps)]
        return token, {"substep_id": substep}


async def workload(api: Api, writes: int, tag: str) -> Workload:
    admin = await api.login(**ADMIN)
    steps = [
        {"title": f"Step {s}", "substeps": [{"title": f"Substep {s}.{n}"} for n in range(10)]}
        for s in range(10)
    ]
    workshop = await api.call(
        "workshop", "POST", "/workshops", {"title": "Faults", "steps": steps}, admin, status=201
    )
    substeps = [sub["id"] for step in workshop["steps"] for sub in step["substeps"]]
    count = -(-writes // len(substeps))
    students = [await api.student(n, tag) for n in range(count)]
    await api.call(
        "workshop",
        "POST",
        f"/workshops/{workshop['id']}/enrollments",
        {"user_ids": [user_id for user_id, _ in students]},
        admin,
    )
    return Workload(workshop["id"], substeps, [token for _, token in students])


async def paced_writes(
    api: Api,
    load: Workload,
    *,
    rate: float,
    seconds: float,
    during: Callable[[float], Coroutine[Any, Any, None]] | None = None,
) -> list[Answer]:
    """POST progress at `rate` per second for `seconds`, each on its own schedule whatever
    the answers before it; `during(t0)` runs alongside (the fault)."""
    url = f"{api.cluster.url('workshop')}/workshops/{load.workshop_id}/progress"
    timeout = aiohttp.ClientTimeout(total=20)
    started = time.monotonic()

    async def one(i: int) -> Answer:
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        sent = time.monotonic() - started
        token, body = load.write(i)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with api.http.post(url, json=body, headers=headers, timeout=timeout) as response:
                payload = await response.read()
                problem, kind = False, ""
                if response.content_type == PROBLEM:
                    document = json.loads(payload)
                    problem = bool(document.get("type")) and bool(document.get("title"))
                    kind = str(document.get("type", "")).rsplit("/", 1)[-1]
                return Answer(sent, response.status, problem, kind)
        except (aiohttp.ClientError, TimeoutError):
            return Answer(sent, 0, False, "no answer")

    writes = [one(i) for i in range(int(rate * seconds))]
    fault = [during(started)] if during else []
    answers = await asyncio.gather(*writes, *fault)
    return [answer for answer in answers if isinstance(answer, Answer)]


async def _handled(api: Api, service: str, outcome: str) -> int:
    url = f"{api.cluster.url(service)}/metrics"
    async with api.http.get(url) as response:
        text = await response.text()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("sukverse_events_handled_total{")
            and f'consumer="{service}"' in line
            and f'outcome="{outcome}"' in line
        )
    )


async def topic_events(bootstrap: str, topic: str) -> Counter[str]:
    """Every substep event on a topic, by id: how many times each was published."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        raise RuntimeError(f"no partitions of {topic}: {described}")
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        seen: Counter[str] = Counter()
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    if event.get("type") == SUBSTEP_EVENT:
                        seen[event["id"]] += 1
        return seen
    finally:
        await consumer.stop()


@dataclass
class KafkaOutage:
    rate: float
    seconds: float
    down_at: float
    down_for: float
    sent: int
    statuses: dict[int, int]
    written: int  # substep events in the workshop's outbox: one per accepted write
    on_topic: int  # distinct substep events on the topic
    published_twice: int  # copies beyond the first on the topic (the relay's retries)
    missing_on_topic: int  # written but never published
    lost: int  # written but never applied by analytics
    applied: int  # by analytics: in its inbox
    # Events analytics handled less the events its inbox holds: 0 unless the inbox, whose
    # primary key is the event id and whose row commits with the handler's work, let an
    # event through twice. The copies it turned away are `duplicates_skipped`.
    applied_twice: int
    duplicates_skipped: int
    backlog: int  # substep events written while the broker was down
    restart_seconds: float  # from the restart to the broker's readiness
    # From the broker's readiness to the last event written before it applied: the backlog
    # drained (writes go on meanwhile, and are applied as they come).
    drain_seconds: float


async def kafka_outage(
    cluster: Cluster, *, rate: float, seconds: float, down_at: float, down_for: float
) -> KafkaOutage:
    """Kill the broker `down_at` s into the load and start it again `down_for` s later."""
    marks: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=500)) as http:
        api = Api(http, cluster)
        load = await workload(api, int(rate * seconds), "kafka")
        before = await _handled(api, "analytics", "handled")
        duplicates_before = await _handled(api, "analytics", "duplicate")
        inbox_before = await _count(cluster.databases["analytics"], "SELECT count(*) FROM inbox")

        async def fault(t0: float) -> None:
            await asyncio.sleep(max(0.0, t0 + down_at - time.monotonic()))
            marks["killed"] = time.time()
            await asyncio.to_thread(cluster.kafka.kill)
            await asyncio.sleep(max(0.0, t0 + down_at + down_for - time.monotonic()))
            marks["restart"] = time.time()
            await asyncio.to_thread(cluster.kafka.start)
            marks["ready"] = time.time()

        answers = await paced_writes(api, load, rate=rate, seconds=seconds, during=fault)
        workshop_db, analytics_db = cluster.databases["workshop"], cluster.databases["analytics"]
        written = await _ids(workshop_db, "outbox")
        deadline = time.monotonic() + 300
        while True:
            unpublished = await _count(
                workshop_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            if not unpublished and len(await _ids(analytics_db, "inbox")) >= len(written):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the events did not drain within 5 minutes")
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # redeliveries still in flight are counted too
        applied = await _ids(analytics_db, "inbox")
        inbox = await _count(analytics_db, "SELECT count(*) FROM inbox") - inbox_before
        handled = await _handled(api, "analytics", "handled") - before
        duplicates = await _handled(api, "analytics", "duplicate") - duplicates_before
        backlog, drained = await _backlog(workshop_db, analytics_db, marks)
    on_topic = await topic_events(cluster.kafka.address, f"{cluster.prefix}sukverse.workshop")
    return KafkaOutage(
        rate=rate,
        seconds=seconds,
        down_at=down_at,
        down_for=down_for,
        sent=len(answers),
        statuses=dict(Counter(a.status for a in answers)),
        written=len(written),
        on_topic=len(on_topic),
        published_twice=sum(on_topic.values()) - len(on_topic),
        missing_on_topic=len(written - set(on_topic)),
        lost=len(written - applied),
        applied=len(applied & written),
        applied_twice=handled - inbox,
        duplicates_skipped=duplicates,
        backlog=backlog,
        restart_seconds=marks["ready"] - marks["restart"],
        drain_seconds=drained - marks["ready"],
    )


async def _backlog(
    workshop_db: str, analytics_db: str, marks: dict[str, float]
) -> tuple[int, float]:
    """How many substep events were written while the broker was down, and when analytics
    applied the last event written before the broker was ready again (epoch seconds)."""
    killed = dt.datetime.fromtimestamp(marks["killed"], dt.UTC)
    ready = dt.datetime.fromtimestamp(marks["ready"], dt.UTC)
    conn = await asyncpg.connect(workshop_db)
    try:
        rows = await conn.fetch(
            "SELECT event_id, created_at FROM outbox WHERE event_type = $1 AND created_at < $2",
            SUBSTEP_EVENT,
            ready,
        )
    finally:
        await conn.close()
    backlog = sum(row["created_at"] >= killed for row in rows)
    conn = await asyncpg.connect(analytics_db)
    try:
        last = await conn.fetchval(
            "SELECT max(handled_at) FROM inbox WHERE event_id = ANY($1::uuid[])",
            [row["event_id"] for row in rows],
        )
    finally:
        await conn.close()
    return backlog, last.timestamp()


async def _count(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


SUBSTEP_IDS = {
    "outbox": "SELECT event_id FROM outbox WHERE event_type = $1",
    "inbox": "SELECT event_id FROM inbox WHERE event_type = $1",
}


async def _ids(dsn: str, table: str) -> set[str]:
    """The ids of the substep events in a service's outbox or inbox."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(SUBSTEP_IDS[table], SUBSTEP_EVENT)
        return {str(row["event_id"]) for row in rows}
    finally:
        await conn.close()


@dataclass
class DatabaseOutage:
    rate: float
    seconds: float
    down_at: float
    down_for: float
    sent: int
    ok: int
    unavailable: int  # 503 with a problem body
    other_5xx: int
    other: dict[str, int]  # anything else: status (and problem type) -> count
    first_ok_after: float  # from the database's readiness to the first write accepted
    errors_before_down: int  # refusals sent before the database went down
    errors_after_ready: int  # refusals sent once it was ready again
    down_seconds: float  # from the stop command to the database's readiness
    rows: int  # progress rows written
    same_process: bool


async def database_outage(
    cluster: Cluster, *, rate: float, seconds: float, down_at: float, down_for: float
) -> DatabaseOutage:
    """Stop the workshop service's PostgreSQL `down_at` s into the load (a fast shutdown,
    which cuts its connections) and start it again `down_for` s later."""
    marks: dict[str, float] = {}
    workshop = cluster.services["workshop"]
    pid = workshop.process.pid
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=500)) as http:
        api = Api(http, cluster)
        load = await workload(api, int(rate * seconds), "postgres")
        rows_before = await _count(cluster.databases["workshop"], "SELECT count(*) FROM progress")

        async def fault(t0: float) -> None:
            await asyncio.sleep(max(0.0, t0 + down_at - time.monotonic()))
            marks["down"] = time.monotonic() - t0
            await asyncio.to_thread(cluster.workshop_postgres.stop)
            await asyncio.sleep(max(0.0, t0 + down_at + down_for - time.monotonic()))
            await asyncio.to_thread(cluster.workshop_postgres.start)
            marks["ready"] = time.monotonic() - t0

        answers = await paced_writes(api, load, rate=rate, seconds=seconds, during=fault)
    rows = await _count(cluster.databases["workshop"], "SELECT count(*) FROM progress")
    ready = marks["ready"]
    accepted_after = [a.sent_at for a in answers if a.status == 200 and a.sent_at >= ready]
    refused = [a for a in answers if a.status != 200]
    other = Counter(
        f"{a.status} {a.kind}".strip() for a in refused if not (a.status == 503 and a.problem)
    )
    return DatabaseOutage(
        rate=rate,
        seconds=seconds,
        down_at=down_at,
        down_for=down_for,
        sent=len(answers),
        ok=sum(a.status == 200 for a in answers),
        unavailable=sum(a.status == 503 and a.problem for a in answers),
        other_5xx=sum(a.status >= 500 and not (a.status == 503 and a.problem) for a in answers),
        other=dict(other),
        first_ok_after=(min(accepted_after) - ready) if accepted_after else float("inf"),
        errors_before_down=sum(a.sent_at < marks["down"] for a in refused),
        errors_after_ready=sum(a.sent_at >= ready for a in refused),
        down_seconds=ready - marks["down"],
        rows=rows - rows_before,
        same_process=workshop.process.poll() is None and workshop.process.pid == pid,
    )
