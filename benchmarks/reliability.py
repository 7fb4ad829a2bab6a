"""The reliability report, docs/reliability.md, measured on the real tier (each service its
own process on PostgreSQL and a Kafka broker, from hack/):

- the Kafka broker killed and restarted while the platform takes progress writes at a
  steady rate: writes accepted, events lost, events applied twice, time to drain;
- the workshop service's PostgreSQL stopped and started under the same load: what the
  clients were answered while it was down, what otherwise, how soon writes succeed again;
- a soak of the whole journey in a loop across the six services: requests, errors, and
  each service's resident memory and open file descriptors from start to end;
- the Schemathesis totals of the contracts tier and the size of the authorization matrix.

`python -m benchmarks.reliability` runs it all and rewrites the report (`make bench` does);
`--soak-minutes N` shortens the soak, `--print` prints the report instead of writing it.
tests/test_reliability.py runs the two fault scenarios briefly and holds their invariants.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.faults import DatabaseOutage, KafkaOutage, database_outage, kafka_outage
from benchmarks.harness import ROOT, machine, percentile
from benchmarks.real_tier import SERVICES, Cluster
from benchmarks.soak import SAMPLE_SECONDS, Soak, soak

REPORT = ROOT / "docs" / "reliability.md"


def contract_totals(directory: Path) -> dict[str, dict[str, Any]]:
    """Run the contracts tier (tests/test_schemathesis.py, both tiers) and read back the
    totals it wrote."""
    env = {**os.environ, "CONTRACT_TOTALS_DIR": str(directory)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, "tests/test_schemathesis.py"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"the contracts tier failed:\n{result.stdout[-5000:]}")
    return {
        tier: json.loads((directory / f"{tier}.json").read_text()) for tier in ("embedded", "real")
    }


def authorization_matrices() -> dict[str, tuple[int, int]]:
    """Per service, the (routes, personas) of its authorization matrix: the table of exact
    statuses (a dict of routes to one status per persona) that
    services/NAME/tests/test_authorization.py asserts, read from its source."""
    found = {}
    for path in sorted(ROOT.glob("services/*/tests/test_authorization.py")):
        tables = [
            [len(row.elts) for row in node.values if isinstance(row, ast.Tuple)]
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Dict)
            and len(node.values) > 1
            and all(
                isinstance(row, ast.Tuple)
                and all(
                    isinstance(cell, ast.Constant) and isinstance(cell.value, int)
                    for cell in row.elts
                )
                for row in node.values
            )
        ]
        if tables:
            found[path.parts[-3]] = (sum(map(len, tables)), max(max(rows) for rows in tables))
    return found


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def render(
    kafka: KafkaOutage,
    database: DatabaseOutage,
    soaked: Soak,
    contracts: dict[str, dict[str, Any]],
    matrices: dict[str, tuple[int, int]],
    *,
    day: str,
) -> str:
    statuses = ", ".join(f"{n} x {s or 'no answer'}" for s, n in sorted(kafka.statuses.items()))
    accepted = kafka.statuses.get(200, 0)
    first = next((s for s in soaked.samples if s.at >= 1), soaked.samples[-1])
    last = soaked.samples[-1]
    lines = [
        "# Reliability",
        "",
        f"Measured on {day} by `python -m benchmarks.reliability` (`make bench` runs it), on",
        f"{machine()}: every service its own `sukverse serve` process in cluster mode, each on",
        "its own database (the workshop service's on a PostgreSQL server of its own, so that it",
        "can go down alone), all on one Kafka broker; PostgreSQL and Kafka from hack/. The",
        "load generator and the measurements run on the same machine. Regenerate this page",
        "with the same command; tests/test_reliability.py runs both fault scenarios briefly in",
        "`make test` and holds the invariants they show here.",
        "",
        "## Kafka broker killed under load",
        "",
        "Progress writes (`POST /workshops/{id}/progress`, each a first completion) at",
        f"{kafka.rate:.0f}/s for {kafka.seconds:.0f} s; the broker SIGKILLed {kafka.down_at:.0f} s",
        f"in and started again {kafka.down_for:.0f} s later. Events are counted three times:",
        "in the workshop service's outbox (written with each write, in its transaction), on",
        "the topic (read whole afterwards with a plain consumer), and in the analytics",
        "service's inbox (where a consumer records each event it applies, in the transaction",
        "that applies it). Applied twice is the analytics consumer's count of events it",
        "handled less the events its inbox holds: the inbox's key is the event id and its row",
        "commits with the handler's work, so this is 0 unless that guarantee breaks; what it",
        "guards against is counted beside it, the copies delivered again and turned away.",
        "The drain is the time from the broker's readiness until analytics applied the last",
        "event written before it (the writes go on meanwhile and are applied as they come).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| writes sent | {kafka.sent} |",
        f"| answers | {statuses} |",
        f"| writes accepted | {accepted} ({_pct(accepted, kafka.sent)}) |",
        f"| substep events written (outbox) | {kafka.written} |",
        f"| distinct substep events on the topic | {kafka.on_topic} |",
        f"| written but not on the topic | {kafka.missing_on_topic} |",
        f"| copies published again (the relay's retries) | {kafka.published_twice} |",
        f"| events lost (written, never applied) | **{kafka.lost}** |",
        f"| substep events applied by analytics | {kafka.applied} |",
        f"| events applied twice | **{kafka.applied_twice}** |",
        f"| copies delivered again, turned away by the inbox | {kafka.duplicates_skipped} |",
        f"| substep events written while the broker was down | {kafka.backlog} |",
        f"| broker restart to ready | {kafka.restart_seconds:.1f} s |",
        f"| broker ready to the backlog applied (drain) | {kafka.drain_seconds:.1f} s |",
        "",
        "## The workshop service's PostgreSQL restarted under load",
        "",
        f"The same writes at {database.rate:.0f}/s for {database.seconds:.0f} s; the workshop",
        f"service's PostgreSQL stopped {database.down_at:.0f} s in (`pg_ctl stop -m fast`, which",
        f"cuts every connection) and started again {database.down_for:.0f} s later. The service",
        "is not restarted.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| writes sent | {database.sent} |",
        f"| accepted (200) | {database.ok} |",
        f"| answered 503 with a problem body | {database.unavailable} |",
        f"| any other 5xx | **{database.other_5xx}** |",
        "| any other answer | "
        + (", ".join(f"{n} x {k}" for k, n in sorted(database.other.items())) or "none")
        + " |",
        f"| stop command to the database ready again | {database.down_seconds:.1f} s |",
        f"| writes refused before it went down | {database.errors_before_down} |",
        f"| writes refused once it was ready again | {database.errors_after_ready} |",
        f"| database ready to the first write accepted | {database.first_ok_after:.3f} s |",
        f"| progress rows written / writes accepted | {database.rows} / {database.ok} |",
        f"| the same service process throughout | {'yes' if database.same_process else '**no**'} |",
        "",
        f"## A {soaked.minutes:.0f}-minute soak of the whole journey",
        "",
        "Four students at a time, each a new account: register, log in, get enrolled, do",
        "every substep, pass the quiz, wait for the certificate (issued from the events),",
        "fetch its credential, the status list and its public verification, read the",
        "analytics, log out and see the token refused. Memory and descriptors are sampled",
        "every 10 s; the start figure is the sample at one minute, once every path has run",
        "(the figure at launch is beside it).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| journeys completed | {soaked.journeys} |",
        f"| requests (waits for events included) | {soaked.requests} |",
        f"| errors | **{len(soaked.errors)}** |",
        f"| request latency p50 / p99 | {percentile(soaked.latencies_ms, 50):.1f} ms / "
        f"{percentile(soaked.latencies_ms, 99):.1f} ms |",
        "",
        "| service | RSS at launch | at 1 min | at end | growth | under 10% | fds at 1 min "
        "| at end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in soaked.launched.rss_mb:
        growth = last.rss_mb[name] / first.rss_mb[name] - 1
        lines.append(
            f"| {name} | {soaked.launched.rss_mb[name]:.0f} MiB | {first.rss_mb[name]:.0f} MiB | "
            f"{last.rss_mb[name]:.0f} MiB | {growth:+.1%} | {'yes' if growth < 0.1 else '**no**'} "
            f"| {first.fds[name]} | {last.fds[name]} |"
        )
    # The course of it: a cache filling to its bound levels off, a leak does not.
    marks = [s for s in soaked.samples if s.at >= 1][:: round(120 / SAMPLE_SECONDS)]
    if marks[-1] is not last:
        marks.append(last)
    lines += [
        "",
        "Resident memory (MiB) over the run:",
        "",
        "| service | " + " | ".join(f"{s.at:.0f} min" for s in marks) + " |",
        "|---|" + "---|" * len(marks),
        *(
            f"| {name} | " + " | ".join(f"{s.rss_mb[name]:.0f}" for s in marks) + " |"
            for name in soaked.launched.rss_mb
        ),
    ]
    if soaked.errors:
        lines += ["", "Errors:", "", *(f"- `{error}`" for error in soaked.errors[:20])]
    lines += [
        "",
        "## Contracts and authorization",
        "",
        "Schemathesis totals of the contracts tier (tests/test_schemathesis.py, every check,",
        "every phase), run by this script:",
        "",
        "| service | operations | cases, embedded | cases, real | failures |",
        "|---|---|---|---|---|",
    ]
    embedded, real = contracts["embedded"], contracts["real"]
    for name in SERVICES:
        failures = embedded[name]["failures"] + real[name]["failures"]
        lines.append(
            f"| {name} | {embedded[name]['operations']} | {embedded[name]['test_cases']:,} | "
            f"{real[name]['test_cases']:,} | {failures} |"
        )
    operations = sum(embedded[name]["operations"] for name in SERVICES)
    cases = [sum(tier[name]["test_cases"] for name in SERVICES) for tier in (embedded, real)]
    fails = sum(tier[name]["failures"] for tier in (embedded, real) for name in SERVICES)
    lines.append(
        f"| **all** | **{operations}** | **{cases[0]:,}** | **{cases[1]:,}** | **{fails}** |"
    )
    cells = sum(rows * personas for rows, personas in matrices.values())
    lines += [
        "",
        "The authorization matrix (each service's test_authorization.py: every route called as",
        "every persona, the exact status asserted):",
        "",
        "| service | routes | personas | cells |",
        "|---|---|---|---|",
        *(
            f"| {name} | {rows} | {personas} | {rows * personas} |"
            for name, (rows, personas) in matrices.items()
        ),
        f"| **all** | **{sum(r for r, _ in matrices.values())}** | | **{cells}** |",
        "",
        "Auth has no table of personas: its tests call every administrative route as a",
        "student (403) and with no token (401), services/auth/tests/test_administration.py.",
        "",
    ]
    return "\n".join(lines)


@contextmanager
def directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sukverse-reliability-") as path:
        yield Path(path)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability")
    parser.add_argument("--soak-minutes", type=float, default=20)
    parser.add_argument("--print", action="store_true", help="print the report, do not write it")
    args = parser.parse_args(argv)
    # Stopped, it still stops the servers and processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with directory() as path:
        # The contracts first: the part most likely to stop the run stops it soonest.
        (path / "contracts").mkdir()
        contracts = contract_totals(path / "contracts")
        print(json.dumps(contracts), flush=True)
        with Cluster(path / "faults", ("auth", "workshop", "analytics")) as cluster:
            kafka = asyncio.run(
                kafka_outage(cluster, rate=200, seconds=60, down_at=15, down_for=20)
            )
            print(kafka, flush=True)
            database = asyncio.run(
                database_outage(cluster, rate=200, seconds=60, down_at=15, down_for=10)
            )
            print(database, flush=True)
        with Cluster(path / "soak", SERVICES) as cluster:
            soaked = asyncio.run(soak(cluster, minutes=args.soak_minutes))
        print(f"soak: {soaked.journeys} journeys, {len(soaked.errors)} errors", flush=True)
        print("\n".join(soaked.errors[:20]), flush=True)
    report = render(
        kafka,
        database,
        soaked,
        contracts,
        authorization_matrices(),
        day=dt.date.today().isoformat(),
    )
    if args.print:
        print(report)
    else:
        REPORT.write_text(report)
        print(f"wrote {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
    os._exit(0)
