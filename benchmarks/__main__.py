"""`make bench`: run every benchmark and rewrite benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from benchmarks import auth
from benchmarks.harness import machine

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def main() -> None:
    rows = auth.run()
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine()} by `make bench`. Each ratio is",
        "against a baseline measured in the same run on the same machine; load comes from",
        "`wrk` (one thread) or a paced asyncio client on loopback.",
        "",
        "Conditions: services run as `sukverse serve`/`up` with `SUKVERSE_LOG_LEVEL=WARNING`",
        "(no access-log line per request) on the embedded SQLite database; argon2id with the",
        f"service's default parameters ({auth.hash_parameters()}). The p99 figures come from",
        "800 requests at 100/s, idle and then while `wrk` keeps every hashing thread busy with",
        "logins. Idle memory is the resident set 2 s after the last request.",
        "",
        "## Auth service",
        "",
        "| measure | value | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "yes" if row.met else "**no**"
        lines.append(
            f"| {row.name} | {row.value} | {row.baseline} | {row.ratio} | {row.target} | {met} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
