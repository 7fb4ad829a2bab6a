"""`make bench`: run every benchmark and rewrite benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from benchmarks import auth, events, workshop
from benchmarks.auth import Row
from benchmarks.harness import machine

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
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


def main() -> None:
    auth_rows = auth.run()
    event_rows = events.run()
    workshop_rows = workshop.run()
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine()} by `make bench`. Each ratio is",
        "against a baseline measured in the same run on the same machine; load comes from",
        "`wrk` (one thread) or a paced asyncio client on loopback. Run it on a quiet machine;",
        "on a shared virtual machine the figures of two runs can differ by a fifth.",
        "",
        "## Auth service",
        "",
        "Services run as `sukverse serve`/`up` with `SUKVERSE_LOG_LEVEL=WARNING` (no access-log",
        "line per request) on the embedded SQLite database; argon2id with the service's default",
        f"parameters ({auth.hash_parameters()}). The p99 figures come from 800 requests at",
        "100/s, idle and then while `wrk` keeps every hashing thread busy with logins. Idle",
        "memory is the resident set 2 s after the last request.",
        "",
        *table(auth_rows),
        "",
        "## Events on Kafka",
        "",
        "Single-node KRaft broker from hack/kafka.sh. The producing side (SQLite outbox and",
        "relay) runs in one process, the consuming side (KafkaBus and InboxDispatcher on SQLite)",
        "in another. The raw loop is an idempotent acks=all aiokafka producer and a consumer",
        "group committing each fetch, with payloads of the same size. The producer writes 100",
        "events per transaction; the consumer's handler records each event in its inbox (and, in",
        "the second row, also inserts a row of its own), a batch per fetch in one transaction.",
        "",
        *table(event_rows),
        "",
        "## Workshop service",
        "",
        "`sukverse serve workshop` on PostgreSQL 15 from hack/postgres.sh (tuned for throw-away",
        f"data: no fsync), with {workshop.STUDENTS} enrolled students in a workshop of",
        f"{workshop.STEPS} steps x {workshop.SUBSTEPS} substeps. `wrk` (16 connections) posts",
        "progress as the students in turn over every substep, so nearly every request records a",
        "new completion and writes its event; the baseline is a bare aiohttp handler reading the",
        "same JSON body. Latency at half the measured rate comes from a paced client. Reads are",
        "paced at 20/s, by an admin; the uncached ones follow an edit each.",
        "",
        *table(workshop_rows),
    ]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
