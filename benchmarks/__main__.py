"""`make bench`: run every benchmark and rewrite benchmarks/RESULTS.md.

`python -m benchmarks users workshop` runs only the sections named and prints them,
leaving RESULTS.md as it is."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from benchmarks import auth, events, users, workshop
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
        "progress as the students in turn over every substep, so nearly every request records a",
        "new completion and writes its event; the baseline is a bare aiohttp handler reading the",
        "same JSON body. Latency at half the measured rate comes from a paced client. Reads are",
        "paced at 20/s, by an admin; the uncached ones follow an edit each.",
        "",
        *table(workshop.run()),
    ]


def users_section() -> list[str]:
    rows, profile = users.run()
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
        "",
        *table(rows),
        "",
        "CPU seconds (user + system, every thread; PostgreSQL's backends summed) during the",
        "import, from /proc via psutil; the whole machine counts other work on it too.",
        "",
        *profile,
    ]


SECTIONS: dict[str, Callable[[], list[str]]] = {
    "auth": auth_section,
    "events": events_section,
    "workshop": workshop_section,
    "users": users_section,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    names = parser.parse_args().sections or list(SECTIONS)
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        parser.error(f"no section {', '.join(unknown)}; the sections are {', '.join(SECTIONS)}")
    body: list[str] = []
    for name in names:
        body += [*SECTIONS[name](), ""]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine()} by `make bench`. Each ratio is",
        "against a baseline measured in the same run on the same machine; load comes from",
        "`wrk` (one thread) or a paced asyncio client on loopback. Run it on a quiet machine;",
        "on a shared virtual machine the figures of two runs can differ by a fifth.",
        "",
        *body[:-1],
    ]
    if names == list(SECTIONS):
        RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
