"""Processes, load generation and measurement shared by the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

ROOT = Path(__file__).resolve().parent.parent
HACK = ROOT / "hack"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}"


def ensure_wrk() -> str:
    """wrk, the load generator, from Debian's package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (Debian package)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait_ready(
    url: str, process: subprocess.Popen[bytes], timeout: float = 60, poll: float = 0.01
) -> float:
    """Seconds until `url` answers 200, polling every `poll` seconds."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(poll)
    raise RuntimeError(f"{url} was not ready within {timeout} s")


@contextmanager
def process(
    args: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process, terminated (killed after 20 s) on leaving; its output to `log` if given,
    else discarded."""
    with ExitStack() as stack:
        output: Any = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        proc = subprocess.Popen(
            list(args),
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            cwd=ROOT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def create_database(dsn: str, name: str) -> str:
    """A new database on a PostgreSQL server; its URL."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return dsn.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sukverse-bench-") as path:
        yield Path(path)


def hack(script: str, *args: str) -> str:
    """Run a hack/ script; its one line of stdout is the result. A failure fails loudly."""
    result = subprocess.run(
        ["bash", str(HACK / script), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"hack/{script} {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result.stdout.strip()


@dataclass
class Server:
    """A real server of hack/ (a PostgreSQL server, a Kafka broker), in its own directory on
    a fixed port, so that it can be stopped and started again where the services expect it."""

    script: str
    directory: Path
    port: int = field(default_factory=free_port)
    address: str = ""

    def start(self) -> str:
        self.address = hack(self.script, "start", str(self.directory), str(self.port))
        return self.address

    def stop(self) -> None:
        hack(self.script, "stop", str(self.directory))

    def kill(self) -> None:
        """SIGKILL the Kafka broker: no clean shutdown, as when its node dies."""
        pid = int((self.directory / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while True:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)


@contextmanager
def hack_server(script: str, directory: Path) -> Iterator[str]:
    """A server of the benchmark's own from a hack/ script; the address it prints."""
    hack(script, "install")
    server = Server(script, directory)
    address = server.start()
    try:
        yield address
    finally:
        server.stop()


def sukverse(*args: str) -> list[str]:
    return [sys.executable, "-m", "sukverse_platform", *args]


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk printed a latency this does not read: {text!r}")
    value, unit = match.groups()
    return float(value) * _UNITS[unit]


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    args = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> WrkResult:
    """What `wrk --latency` printed. The percentiles are read from the latency distribution's
    own lines: a thread statistic's spread such as `71.50%` ends in a percentile's name too."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    failed = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in failed.groups()) if failed else 0
    done = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return WrkResult(rps, p50, p99, errors, done)


Request = Callable[[int], tuple[dict[str, str], Any]]
"""The headers and JSON body of the n-th request of a paced run."""


async def paced_latencies(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    rate: float,
    seconds: float,
    post: Request | None = None,
) -> list[float]:
    """Latencies (ms) of requests sent at a fixed rate, one at a time, open loop: GETs, or
    with `post`, POSTs of the bodies it gives."""
    latencies: list[float] = []
    interval = 1 / rate
    async with aiohttp.ClientSession(headers=headers) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while loop.time() - start < seconds:
            if post is None:
                call = session.get(url)
            else:
                extra, body = post(n)
                call = session.post(url, json=body, headers=extra)
            sent = time.perf_counter()
            async with call as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
            latencies.append((time.perf_counter() - sent) * 1000)
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
    return latencies


def percentile(values: Sequence[float], q: float) -> float:
    cuts: list[float] = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[int(q) - 1]


def rss_mb(pid: int) -> float:
    """The resident memory of a process and the processes it started (auth's hashing
    workers), as a pod's would count them."""
    root = psutil.Process(pid)
    total = 0
    for each in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += each.memory_info().rss
    return total / 2**20


@dataclass(frozen=True)
class Rounds:
    """A measure and its baseline, taken in turn in each round of one run: the ratio that
    counts is the median of the rounds' ratios, reported with their spread."""

    values: list[float]
    baselines: list[float]

    @property
    def ratios(self) -> list[float]:
        return [v / b for v, b in zip(self.values, self.baselines, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def value(self) -> float:
        return statistics.median(self.values)

    @property
    def baseline(self) -> float:
        return statistics.median(self.baselines)

    def spread(self, percent: bool) -> str:
        low, high = min(self.ratios), max(self.ratios)
        span = f"{low:.1%} to {high:.1%}" if percent else f"{low:.2f}x to {high:.2f}x"
        return f"the median of {len(self.values)} rounds, whose ratios spanned {span}"


def figure(text: str) -> float:
    """The number a row's cell shows: `44%`, `3.1x`, `571`."""
    found = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    if found is None:
        raise ValueError(f"no figure in {text!r}")
    return float(found.group())
