"""Start-up: exec to the first 200 from `/readyz`, for `sukverse serve NAME` and `sukverse up`,
against a bare aiohttp application started the same way, in alternating rounds.

A second baseline, the library floor, is the same bare application after importing the
libraries every service is built on (`benchmarks.bare --libraries`): what any service made
of them pays before its own first line runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.auth import Row
from benchmarks.harness import ROOT, Rounds, data_dir, free_port, process, sukverse, wait_ready

ROUNDS = 5
SERVICES = ("auth", "user_mgmt", "workshop", "quiz", "analytics", "certificate")
SERVE_TARGET = 2.5  # x the bare application
UP_TARGET = 4.0
FLOOR_TARGET = 1.5  # x the library floor
ENV = {"SUKVERSE_LOG_LEVEL": "WARNING"}


def ready(args: list[str], path: str, port: int, env: dict[str, str] | None = None) -> float:
    with process(args, env={**ENV, **(env or {})}) as proc:
        return wait_ready(f"http://127.0.0.1:{port}{path}", proc, poll=0.002)


def bare(*extra: str) -> float:
    port = free_port()
    return ready([sys.executable, "-m", "benchmarks.bare", str(port), *extra], "/", port)


def serve(name: str) -> float:
    port = free_port()
    with data_dir() as path:
        args = sukverse("serve", name, "--port", str(port))
        return ready(args, "/readyz", port, {"SUKVERSE_DATA_DIR": str(path)})


def up(path: Path) -> float:
    port = free_port()
    args = sukverse("up", "--port-base", str(port))
    return ready(args, "/readyz", port, {"SUKVERSE_DATA_DIR": str(path)})


def row(name: str, rounds: Rounds, baseline: str, target: float) -> Row:
    return Row(
        name,
        f"{rounds.value:.3f}",
        f"{baseline} {rounds.baseline:.3f} s; {rounds.spread(percent=False)}",
        f"{rounds.ratio:.2f}x",
        f"<= {target:g}x",
        rounds.ratio <= target,
    )


def importtime(name: str) -> list[str]:
    """The largest imports of `sukverse serve NAME`'s modules, from `python -X importtime`:
    a table of the libraries and packages with the most cumulative time."""
    code = (
        "from sukverse_platform import cli, registry\n"
        f"spec = registry.SERVICES[{name!r}]\n"
        "spec.app(spec.settings(), bus=None)\n"
    )
    with data_dir() as path:
        stderr = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env={**ENV, "SUKVERSE_DATA_DIR": str(path), "PATH": "/usr/bin:/bin"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stderr
    packages: dict[str, int] = {}
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, own, _, module = (part.strip() for part in line.replace("|", ":", 2).split(":", 3))
        package = module.split(".")[0]
        packages[package] = packages.get(package, 0) + int(own)
        total += int(own)
    top = sorted(packages.items(), key=lambda item: -item[1])[:12]
    return [
        "| package | import time, own modules (ms) | share |",
        "|---|---|---|",
        *(f"| `{package}` | {us / 1000:.1f} | {us / total:.0%} |" for package, us in top),
        f"| all {len(packages)} packages | {total / 1000:.1f} | 100% |",
    ]


def run() -> tuple[list[Row], list[str]]:
    bare_times: list[float] = []
    floors: list[float] = []
    served: dict[str, list[float]] = {name: [] for name in SERVICES}
    fresh: list[float] = []
    again: list[float] = []
    bare("--libraries")  # the first start of all reads the files into the page cache
    for _ in range(ROUNDS):
        bare_times.append(bare())
        floors.append(bare("--libraries"))
        for name in SERVICES:
            served[name].append(serve(name))
        with data_dir() as path:
            fresh.append(up(path))
            again.append(up(path))

    bare_app, floor = "bare aiohttp application", "library floor"
    rows = [
        row(
            "the library floor: the bare application after the libraries' imports (s)",
            Rounds(floors, bare_times),
            bare_app,
            SERVE_TARGET,
        )
    ]
    for against, baselines, label, target in (
        ("ready, new data dir", bare_times, bare_app, SERVE_TARGET),
        ("against the library floor", floors, floor, FLOOR_TARGET),
    ):
        rows += [
            row(
                f"`sukverse serve {name}` {against} (s)",
                Rounds(served[name], baselines),
                label,
                target,
            )
            for name in SERVICES
        ]
    for label, values in (("new", fresh), ("existing", again)):
        rows.append(
            row(
                f"`sukverse up` ready, {label} data dir (s)",
                Rounds(values, bare_times),
                bare_app,
                UP_TARGET,
            )
        )
    for label, values in (("new", fresh), ("existing", again)):
        seconds = statistics.median(values)
        rows.append(
            Row(
                f"`sukverse up` ready, {label} data dir, absolute (s)",
                f"{seconds:.3f}",
                f"rounds {min(values):.3f}-{max(values):.3f} s",
                "-",
                "< 5",
                seconds < 5,
            )
        )
    return rows, importtime("workshop")


if __name__ == "__main__":
    found, imports = run()
    for line in found:
        print(line)
    print("\n".join(imports))
