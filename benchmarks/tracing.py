"""What tracing costs: authenticated `GET /auth/me` and the events pipeline traced to a real
Jaeger, against the same with tracing off just before and just after, in one run.

Tracing on means `OTEL_EXPORTER_OTLP_ENDPOINT` set, with each of the samplers of `SAMPLERS`:
from no trace kept to every one, the most it can cost. The pipeline runs in a process of its
own each time, since tracing is configured once per process; its consuming side is a child of
that process, as in `benchmarks.events`, and takes the same environment.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from benchmarks.auth import Row
from benchmarks.harness import (
    ROOT,
    Rounds,
    data_dir,
    free_port,
    hack_server,
    http_json,
    process,
    sukverse,
    wait_ready,
    wrk,
)

ROUNDS = 7  # rounds spread by 10-20 points on a shared machine: a median of five moved with one
SECONDS = 10
# A hundredth of the traces kept is 1 write of 100 events in 100: with 50,000 events, five kept
# traces on average and anywhere from one to ten, which spread a round's ratio from 71% to
# 100%; 200,000 events keep twenty on average.
PIPELINE_EVENTS = 200_000
PASSWORD = "correct horse battery staple"
TARGET = 0.85  # tracing on keeps at least this share of the throughput with it off


@contextmanager
def jaeger(directory: Path) -> Iterator[str]:
    """A Jaeger of the benchmark's own (hack/jaeger.sh); its OTLP/HTTP endpoint."""
    script = str(ROOT / "hack" / "jaeger.sh")
    subprocess.run(["bash", script, "install"], check=True, capture_output=True)
    started = subprocess.run(
        ["bash", script, "start", str(directory)], check=True, capture_output=True, text=True
    )
    try:
        yield started.stdout.split()[0]
    finally:
        subprocess.run(["bash", script, "stop", str(directory)], check=True, capture_output=True)


# The samplers measured, each parent-based (a trace is kept or dropped whole): none kept (the
# context only), the charts' default of a hundredth, a tenth, and every trace.
SAMPLERS = {
    "zero": {"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
    "one": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    "ratio": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "always": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}
# The pipeline once more with aiokafka's instrumentation on (off by default): a `receive`
# span of every record fetched.
WITH_AIOKAFKA = {**SAMPLERS["ratio"], "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ""}


def tracing_env(otlp: str | None, sampler: str = "always") -> dict[str, str]:
    if otlp is None:
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
        **(WITH_AIOKAFKA if sampler == "aiokafka" else SAMPLERS[sampler]),
    }


def me_rate(otlp: str | None, sampler: str = "always") -> float:
    """Requests/s of an authenticated `GET /auth/me` on `sukverse serve auth`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with data_dir() as path:
        env = {
            "SUKVERSE_DATA_DIR": str(path),
            "SUKVERSE_LOG_LEVEL": "WARNING",
            **tracing_env(otlp, sampler),
        }
        with process(sukverse("serve", "auth", "--port", str(port)), env=env) as service:
            wait_ready(f"{url}/readyz", service)
            account = {"email": "bench@example.com", "password": PASSWORD}
            http_json("POST", f"{url}/auth/register", {**account, "full_name": "Bench"})
            token = http_json("POST", f"{url}/auth/login", account)["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            wrk(f"{url}/auth/me", seconds=2, connections=16, headers=headers)  # warm up
            result = wrk(f"{url}/auth/me", seconds=SECONDS, connections=16, headers=headers)
    if result.errors:
        raise RuntimeError(f"/auth/me: {result.errors} failed requests")
    return result.requests_per_second


def pipeline_rate(bootstrap: str, name: str, otlp: str | None, sampler: str = "always") -> float:
    """Events/s through outbox → relay → Kafka → inbox on SQLite, in a process of its own."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.tracing", "pipeline", bootstrap, name],
        env={**os.environ, **tracing_env(otlp, sampler)},
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return float(result.stdout.split()[-1])


def pipeline_main(bootstrap: str, name: str) -> None:
    """The pipeline of `benchmarks.events`, traced when the environment says so."""
    from benchmarks import events
    from sukverse_common import tracing
    from sukverse_common.logs import configure_logging

    configure_logging("WARNING")
    traced = tracing.configure("bench-producer", "0")
    try:
        rate = asyncio.run(events.pipeline_throughput(bootstrap, name, PIPELINE_EVENTS))
    finally:
        tracing.shutdown()
    print(f"traced={traced} {rate:.1f}")


def chain(modes: Sequence[str], rate: Callable[[str], float], into: dict[str, Rounds]) -> None:
    """Runs `modes` in turn, each between two runs with tracing off, and adds to each mode's
    rounds its rate and, as its baseline, the mean of those two: a mode is compared with the
    machine as it was just before and just after it, not with an "off" taken runs earlier.
    """
    before = rate("off")
    for mode in modes:
        value = rate(mode)
        after = rate("off")
        into[mode].values.append(value)
        into[mode].baselines.append((before + after) / 2)
        before = after


def run() -> list[Row]:
    pipe_modes = (*SAMPLERS, "aiokafka")
    me: dict[str, Rounds] = {mode: Rounds([], []) for mode in SAMPLERS}
    pipe: dict[str, Rounds] = {mode: Rounds([], []) for mode in pipe_modes}
    with (
        data_dir() as path,
        hack_server("kafka.sh", path / "kafka") as bootstrap,
        jaeger(path / "jaeger") as otlp,
    ):
        runs = itertools.count()

        def me_run(mode: str) -> float:
            return me_rate(None if mode == "off" else otlp, mode)

        def pipe_run(mode: str) -> float:
            name = str(path / f"run{next(runs)}")
            return pipeline_rate(bootstrap, name, None if mode == "off" else otlp, mode)

        pipe_run("off")  # warms the broker's JIT up
        for n in range(ROUNDS):
            # The order turns round every other round: what a setting leaves behind (a Jaeger
            # still busy with every trace kept, say) falls on a different setting's runs.
            turn = slice(None, None, 1 if n % 2 == 0 else -1)
            chain(tuple(me)[turn], me_run, me)
            chain(pipe_modes[turn], pipe_run, pipe)
    rows = []
    for mode, what in (
        ("zero", "no trace kept (the context carried, nothing recorded)"),
        ("one", "a hundredth of the traces kept (the charts' default)"),
        ("ratio", "a tenth of the traces kept"),
        ("always", "every trace kept"),
    ):
        target = f">= {TARGET:.0%}" if mode == "one" else "-"
        rows += [
            row(f"/auth/me throughput traced to Jaeger, {what} (req/s)", me[mode], "req/s", target),
            row(
                f"events through outbox → relay → Kafka → inbox, SQLite, traced, {what} (events/s)",
                pipe[mode],
                "events/s",
                target,
            ),
        ]
    rows.append(
        row(
            "the same, a tenth kept, with aiokafka's instrumentation on (events/s)",
            pipe["aiokafka"],
            "events/s",
            "-",
        )
    )
    return rows


def row(measure: str, rounds: Rounds, unit: str, target: str) -> Row:
    return Row(
        measure,
        f"{rounds.value:.0f}",
        f"tracing off {rounds.baseline:.0f} {unit}, just before and after; "
        + rounds.spread(percent=True),
        f"{rounds.ratio:.1%}",
        target,
        target == "-" or rounds.ratio >= TARGET,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["pipeline"]:
        pipeline_main(sys.argv[2], sys.argv[3])
    else:
        for each in run():
            print(each)
    os._exit(0)
