"""`make bench`: run every benchmark and rewrite benchmarks/RESULTS.md;
`python -m benchmarks NAME...` runs only the named sections and prints them, and with
`--write` also puts them in RESULTS.md in place of the same sections, each marked with the
day it was measured."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import analytics, auth, events, operator, startup, tracing, users, workshop
from benchmarks.auth import Row, in_rounds
from benchmarks.harness import machine

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ROUNDS = 3  # a section measured whole this many times, each row judged on its median
IN_ROUNDS = (
    f"The section runs whole {ROUNDS} times; each row is the round whose figure is the",
    "median of that row's, with the span of the rounds beside its baseline.",
)
TABLE_HEAD = [
    "| measure | value | baseline (same run) | ratio | target | met |",
    "|---|---|---|---|---|---|",
]


def table(rows: list[Row]) -> list[str]:
    return TABLE_HEAD + [
        f"| {row.name} | {row.value} | {row.baseline} | {row.ratio} | {row.target} | "
        f"{'yes' if row.met else '**no**'} |"
        for row in rows
    ]


def auth_section() -> list[str]:
    rows = auth.run()
    return [
        "## Auth service",
        "",
        "Services run as `sukverse serve`/`up` with `SUKVERSE_LOG_LEVEL=WARNING` (no access-log",
        "line per request) on the embedded SQLite database; argon2id with the service's default",
        f"parameters ({auth.hash_parameters()}). The p99 figures come from 800 requests at",
        "100/s, idle and then while `wrk` keeps every hashing worker busy with logins. Each",
        f"measure and its baseline run in turn in each of {auth.ROUNDS} rounds; the ratio",
        "reported is the median of the rounds' ratios, with their span. The `/auth/me`",
        "baseline answers a JSON body of the same size and shape. Memory is the resident",
        "set of the service and its processes: 2 s after the first logins, with the hashing",
        "worker they started, and idle once it stopped for want of work (30 s later).",
        "",
        *table(rows),
    ]


def startup_section() -> list[str]:
    rows, imports = startup.run()
    return [
        "## Start-up",
        "",
        "From exec to the first 200 of `/readyz` (polled every 2 ms), each service as",
        "`sukverse serve NAME` on a new embedded data directory (it migrates its SQLite",
        "database; auth also creates its signing key and first admin), and `sukverse up`",
        "on a new and then the same data directory. The baseline is a bare aiohttp",
        "application (benchmarks/bare.py) started the same way; the library floor is that",
        "application after importing what every service is built on (SQLAlchemy's asyncio",
        "ORM, aiosqlite, Alembic, pydantic-settings, prometheus-client, joserfc, structlog).",
        f"All of them run in turn in each of {startup.ROUNDS} rounds, with bytecode compiled",
        "ahead as `make sync` and the image do.",
        "",
        "The floor alone is over 2.5 times the bare application, so no service built on",
        "these libraries meets the 2.5x target, nor six of them the 4x one: those rows are",
        "kept as they were set, and the rows against the floor measure what Sukverse's own",
        "code adds.",
        "",
        *table(rows),
        "",
        "`python -X importtime` of `sukverse serve workshop`'s modules (the",
        "service's application built, nothing started), by package, own time:",
        "",
        *imports,
    ]


def events_section() -> list[str]:
    rows = events.run()
    return [
        "## Events on Kafka",
        "",
        "Single-node KRaft broker from hack/kafka.sh. The producing side (outbox and relay)",
        "runs in one process, the consuming side (KafkaBus and InboxDispatcher) in another, each",
        "on a database of its own: SQLite files, or in the second row two databases of",
        "PostgreSQL 15 from hack/postgres.sh (tuned for throw-away data: no fsync), as a cluster",
        "gives each service its own. Once started, both sides leave their start-up objects",
        "out of garbage collection and collect young objects every 10,000 allocations, as",
        "`sukverse serve` does. The raw loop",
        "(benchmarks/raw_kafka.py) is an idempotent",
        "acks=all aiokafka producer and a consumer group committing each fetch, with payloads of",
        "the same size, run as a bare program in processes that import aiokafka and nothing of",
        "the platform. The producer writes 100",
        "events per transaction; the consumer's handler records each event in its inbox (and, in",
        "the third row, also inserts a row of its own), a batch per fetch in one transaction.",
        f"The raw loop and the two pipelines run in turn {events.ROUNDS} times; for each",
        "pipeline the round with the median ratio is reported, and the rows below them use the",
        "raw loop of the SQLite pipeline's median round.",
        "",
        *table(rows),
    ]


def workshop_section() -> list[str]:
    rows = in_rounds(workshop.run, ROUNDS)
    return [
        "## Workshop service",
        "",
        "`sukverse serve workshop` on PostgreSQL 15 from hack/postgres.sh (tuned for throw-away",
        f"data: no fsync), with {workshop.STUDENTS} enrolled students in a workshop of",
        f"{workshop.STEPS} steps x {workshop.SUBSTEPS} substeps. `wrk` (16 connections) posts",
        "progress as the students in turn, each over every substep in order, so every request",
        "records a new completion and writes its event, and every tenth also completes a step.",
        "The first baseline is a bare aiohttp handler reading the same JSON body. The second",
        "(benchmarks/bare_progress.py) is a bare aiohttp handler with raw asyncpg and a pool of",
        "the service's size doing the service's transaction, statement for statement, on a copy",
        "of the migrated, enrolled database; it reads the token's subject without checking the",
        "signature. After each run the rows written are counted against the requests. CPU is",
        "the process's user+system time over the run, per request. Latency at half the measured",
        "rate comes from a paced client. Reads are paced at 20/s, by an admin; the uncached ones",
        "follow an edit each. The write's target is judged against the second baseline: a",
        "handler that commits nothing measures PostgreSQL's cost rather than the service's (the",
        "bare asyncpg handler itself reaches under a tenth of it); it is shown for reference.",
        *IN_ROUNDS,
        "",
        *table(rows),
    ]


def analytics_section() -> list[str]:
    rows = in_rounds(analytics.run, ROUNDS)
    a = analytics
    return [
        "## Analytics service",
        "",
        "`sukverse serve analytics` in cluster mode (migrated first) on PostgreSQL 15 and the",
        "Kafka broker above consumes what the benchmark publishes as the workshop service would:",
        f"progress of {a.WORKSHOPS * a.STUDENTS:,} students in {a.WORKSHOPS} workshops, keyed by",
        "enrollment. A backlog is published as fast as KafkaBus goes; the baseline is a bare",
        "aiokafka consumer group reading the same topic and committing each fetch. The",
        "backlog's end is read from the service's count of handled events on `/metrics`, a",
        "few looks a drain, closer together as the end nears. Then",
        f"{a.RATE:,} events/s for {a.SECONDS} s, paced, among which a probe event every",
        f"{a.PROBE_EVERY:g} s moves a one-student workshop's figure: event-to-figure latency runs",
        "from the publish call until `GET /analytics/workshops/{id}` shows the event (polled",
        f"every {a.POLL_EVERY * 1000:.0f} ms). The read workshops' events are handled in the",
        "benchmark's process by the analytics consumer's own dispatcher and handlers against the",
        f"service's database ({a.FEEDERS} transactions at a time of {a.HANDLE_BATCH} events, as",
        "partitions would be), skipping only the broker; reads are paced at 20/s, by an admin.",
        "A workshop's figures are per-workshop sums, the median read along an index, and the",
        "risk rules run over the students a query finds possibly at risk: nothing grows with",
        "the events behind a workshop.",
        *IN_ROUNDS,
        "",
        *table(rows),
    ]


def users_section() -> list[str]:
    profiles: list[list[str]] = []

    def once() -> list[Row]:
        rows, profile = users.run()
        profiles.append(profile)
        return rows

    rows = in_rounds(once, ROUNDS)
    profile = profiles[-1]
    return [
        "## User management: CSV import",
        "",
        "`sukverse serve auth` and `sukverse serve user_mgmt`, each on its own PostgreSQL 15",
        "database from hack/postgres.sh, their events on the Kafka broker from hack/kafka.sh.",
        f"An admin posts a CSV file of {users.ROWS:,} new users (with an organisation and a",
        "locale each) and polls the import's status until it is done; the rate counts from the",
        "upload to the status `done`. The baseline makes the call the import makes to auth for",
        f"a new user, `POST /users`, directly, {users.CONCURRENCY} at once, for",
        f"{users.DIRECT_ROWS:,} users. Imported accounts get no password (a `!unset:` marker and",
        "a one-time set-password token), so auth hashes nothing for them; the argon2id rate,",
        "with auth's default parameters, shows what a hash per row would have allowed.",
        "Auth, user_mgmt, PostgreSQL and Kafka share the 2 cores during an import, so its rate",
        "stays under the direct calls'; what limits it is the process that spends the most CPU",
        "per row, and the import's own process must spend less per row than auth does.",
        *IN_ROUNDS,
        "",
        *table(rows),
        "",
        "CPU seconds (user + system, every thread; PostgreSQL's backends summed) during the",
        "import, from /proc via psutil; the whole machine counts other work on it too.",
        "",
        *profile,
    ]


def operator_section() -> list[str]:
    rows = in_rounds(operator.run, ROUNDS)
    return [
        "## The cohort operator",
        "",
        "A kube-apiserver with etcd from hack/kube.sh; auth, workshop, quiz, analytics and",
        "certificate as `sukverse serve` processes, each on its own PostgreSQL 15 database from",
        "hack/postgres.sh, their events on the Kafka broker from hack/kafka.sh; `sukverse",
        "operator` signed in with a token of the operator chart's ServiceAccount. Cohorts are",
        "applied with `kubectl apply --server-side` and timed until `kubectl get` shows them",
        "Ready at their generation. The baseline makes the writes a new cohort takes (a",
        "look-up and an account per student, the workshop, one enrollment call) from a bare",
        f"aiohttp loop, {operator.CONCURRENCY} at once as the operator does. The unchanged",
        "re-reconcile is the timer's full run (drift repair, every 10 s here). API server",
        "writes are its own request counter for the cohorts' resource; service writes are",
        "those the operator logs for each reconcile.",
        *IN_ROUNDS,
        "",
        *table(rows),
    ]


def tracing_section() -> list[str]:
    rows = tracing.run()
    return [
        "## Tracing",
        "",
        "The same two measures with tracing off and on, in each of",
        f"{tracing.ROUNDS} rounds. In a round each setting runs between two runs with tracing",
        "off, and its ratio is its rate over their mean; the settings' order turns round every",
        "other round. The median of the rounds' ratios is reported with their span.",
        "On means `OTEL_EXPORTER_OTLP_ENDPOINT` names a Jaeger v2",
        "from hack/jaeger.sh (in-memory storage, on this machine), with a parent-based sampler",
        "keeping no trace, a hundredth (the charts' default), a tenth or every one. `/auth/me`:",
        f"`sukverse serve auth` on SQLite, `wrk` with 16 connections for {tracing.SECONDS} s,",
        "each request a trace of its own. The pipeline: the SQLite row of the events section",
        f"with {tracing.PIPELINE_EVENTS:,} events, both its processes traced: each outbox write",
        "of 100 events starts a trace (a `create` span), and a kept one has a `send` span of",
        "each publish and a `process` span of each consumer batch its events are in. The last",
        "row turns aiokafka's instrumentation on (off by default), which makes a `receive`",
        "span of every record fetched.",
        "",
        *table(rows),
    ]


SECTIONS: dict[str, Callable[[], list[str]]] = {
    "auth": auth_section,
    "startup": startup_section,
    "events": events_section,
    "workshop": workshop_section,
    "users": users_section,
    "analytics": analytics_section,
    "operator": operator_section,
    "tracing": tracing_section,
}


def splice(results: str, section: list[str]) -> str:
    """RESULTS.md with `section` in place of the one under the same heading (or after the
    last), marked as measured today on its own."""
    heading = section[0]
    marked = [
        heading,
        "",
        f"This section was measured {dt.date.today().isoformat()} on {machine()} by",
        "`python -m benchmarks --write`, apart from the other sections.",
        *section[1:],
    ]
    lines = results.rstrip("\n").split("\n")
    if heading not in lines:
        return "\n".join([*lines, "", *marked]) + "\n"
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = ["", *lines[end:]] if end < len(lines) else []
    return "\n".join([*lines[:start], *marked, *tail]) + "\n"


def main(args: list[str]) -> None:
    write = "--write" in args
    names = [arg for arg in args if arg != "--write"]
    unknown = set(names) - set(SECTIONS)
    if unknown or (write and not names):
        sys.exit(
            f"no benchmark section {', '.join(sorted(unknown))}; sections: {', '.join(SECTIONS)}"
            if unknown
            else "--write names the sections to measure again"
        )
    if names:
        measured = [SECTIONS[name]() for name in names]
        print("\n\n".join("\n".join(section) for section in measured))
        if write:
            results = RESULTS.read_text(encoding="utf-8")
            for section in measured:
                results = splice(results, section)
            RESULTS.write_text(results, encoding="utf-8")
        return
    sections: list[str] = []
    for name in SECTIONS:
        sections += ["", *SECTIONS[name]()]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine()} by `make bench`. Each ratio is",
        "against a baseline measured in the same run on the same machine; load comes from",
        "`wrk` (one thread) or a paced asyncio client on loopback. Run it on a quiet machine;",
        "on a shared virtual machine the figures of two runs can differ by a fifth.",
        *sections,
    ]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
