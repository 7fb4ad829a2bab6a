"""`make bench`: run every benchmark and rewrite benchmarks/RESULTS.md; `python -m
benchmarks workshop` (or auth, events) runs one section and replaces only it."""

from __future__ import annotations

import datetime as dt
import sys
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


def auth_section() -> list[str]:
    return [
        "## Auth service",
        "",
        "Services run as `sukverse serve`/`up` with `SUKVERSE_LOG_LEVEL=WARNING` (no access-log",
        "line per request) on the embedded SQLite database; argon2id with the service's default",
        f"parameters ({auth.hash_parameters()}). The p99 figures come from 800 requests at",
        "100/s, idle and then while `wrk` keeps every hashing thread busy with logins. Idle",
        "memory is the resident set 2 s after the last request.",
        "",
        *table(auth.run()),
    ]


def events_section() -> list[str]:
    return [
        "## Events on Kafka",
        "",
        "Single-node KRaft broker from hack/kafka.sh. The producing side (SQLite outbox and",
        "relay) runs in one process, the consuming side (KafkaBus and InboxDispatcher on SQLite)",
        "in another. The raw loop is an idempotent acks=all aiokafka producer and a consumer",
        "group committing each fetch, with payloads of the same size. The producer writes 100",
        "events per transaction; the consumer's handler records each event in its inbox (and, in",
        "the second row, also inserts a row of its own), a batch per fetch in one transaction.",
        "",
        *table(events.run()),
    ]


def workshop_section() -> list[str]:
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
        "follow an edit each.",
        "",
        *table(workshop.run()),
    ]


SECTIONS = {"auth": auth_section, "events": events_section, "workshop": workshop_section}


def replace_section(text: str, section: list[str]) -> str:
    """The results with one section (from its heading to the next) replaced."""
    lines = text.rstrip("\n").split("\n")
    start = lines.index(section[0])
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("## ")), len(lines))
    tail = ["", *lines[end:]] if end < len(lines) else []
    return "\n".join(lines[:start] + section + tail) + "\n"


def main(argv: list[str]) -> None:
    """Every section, rewriting the file; or only the sections named, replaced in place."""
    if argv:
        text = RESULTS.read_text(encoding="utf-8")
        for name in argv:
            section = SECTIONS[name]()
            text = replace_section(text, section)
            print("\n".join(section))
        RESULTS.write_text(text, encoding="utf-8")
        return
    sections = [build() for build in SECTIONS.values()]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine()} by `make bench`. Each ratio is",
        "against a baseline measured in the same run on the same machine; load comes from",
        "`wrk` (one thread) or a paced asyncio client on loopback. Run it on a quiet machine;",
        "on a shared virtual machine the figures of two runs can differ by a fifth.",
    ]
    for section in sections:
        lines += ["", *section]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
