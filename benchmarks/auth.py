"""Auth service: login against raw argon2id, /auth/me against a bare handler, memory, start-up."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, Type

from benchmarks.harness import (
    data_dir,
    free_port,
    http_json,
    paced_latencies,
    percentile,
    process,
    rss_mb,
    sukverse,
    wait_ready,
    wrk,
)
from sukverse_auth.settings import AuthSettings

HERE = Path(__file__).resolve().parent
PASSWORD = "correct horse battery staple"
SECONDS = 10
ACCOUNTS = 16


@dataclass(frozen=True)
class Row:
    name: str
    value: str
    baseline: str
    ratio: str
    target: str
    met: bool


def hash_parameters() -> str:
    settings = AuthSettings()
    return (
        f"t={settings.argon2_time_cost}, m={settings.argon2_memory_kib // 1024} MiB, "
        f"p={settings.argon2_parallelism}, {settings.hash_workers} hashing threads"
    )


def raw_argon2_rate(settings: AuthSettings, seconds: float, *, hashing: bool = False) -> float:
    """Verifies (or with `hashing`, hashes) per second on `hash_workers` threads, the same
    parameters as the service."""
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )
    encoded = hasher.hash(PASSWORD)
    deadline = time.perf_counter() + seconds
    done = [0] * settings.hash_workers
    lock = threading.Lock()

    def work(slot: int) -> None:
        while time.perf_counter() < deadline:
            if hashing:
                hasher.hash(PASSWORD)
            else:
                hasher.verify(encoded, PASSWORD)
            with lock:
                done[slot] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(settings.hash_workers) as pool:
        list(pool.map(work, range(settings.hash_workers)))
    return sum(done) / (time.perf_counter() - started)


def startup_seconds() -> tuple[float, float]:
    """`sukverse up` from spawn to ready: on a new data directory, then on the same again."""
    times = []
    with data_dir() as path:
        for _ in range(2):
            base = free_port()
            env = {"SUKVERSE_DATA_DIR": str(path), "SUKVERSE_LOG_LEVEL": "WARNING"}
            with process(sukverse("up", "--port-base", str(base)), env=env) as proc:
                times.append(wait_ready(f"http://127.0.0.1:{base}/readyz", proc))
    return times[0], times[1]


def run() -> list[Row]:
    settings = AuthSettings()
    rows: list[Row] = []

    raw = raw_argon2_rate(settings, SECONDS)

    bare_port = free_port()
    with process([sys.executable, "-m", "benchmarks.bare", str(bare_port)]) as bare:
        wait_ready(f"http://127.0.0.1:{bare_port}/", bare)
        bare_result = wrk(f"http://127.0.0.1:{bare_port}/", seconds=SECONDS, connections=16)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with data_dir() as path:
        env = {"SUKVERSE_DATA_DIR": str(path), "SUKVERSE_LOG_LEVEL": "WARNING"}
        with process(sukverse("serve", "auth", "--port", str(port)), env=env) as service:
            wait_ready(f"{url}/readyz", service)
            for i in range(ACCOUNTS):  # login.lua cycles through these accounts
                account = {"email": f"bench{i}@example.com", "password": PASSWORD}
                http_json("POST", f"{url}/auth/register", {**account, "full_name": f"B {i}"})
            token = http_json(
                "POST", f"{url}/auth/login", {"email": "bench0@example.com", "password": PASSWORD}
            )["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            time.sleep(2)
            idle_rss = rss_mb(service.pid)

            me = wrk(f"{url}/auth/me", seconds=SECONDS, connections=16, headers=auth)
            login = wrk(
                f"{url}/auth/login", seconds=SECONDS, connections=8, script=HERE / "login.lua"
            )

            idle = asyncio.run(paced_latencies(f"{url}/auth/me", headers=auth, rate=100, seconds=8))
            result: dict[str, list[float]] = {}
            loaded = threading.Thread(
                target=lambda: result.setdefault(
                    "latencies",
                    asyncio.run(
                        paced_latencies(f"{url}/auth/me", headers=auth, rate=100, seconds=8)
                    ),
                )
            )
            login_load = threading.Thread(
                target=lambda: wrk(
                    f"{url}/auth/login", seconds=10, connections=8, script=HERE / "login.lua"
                )
            )
            login_load.start()
            time.sleep(1)
            loaded.start()
            loaded.join()
            login_load.join()
            busy_p99, idle_p99 = percentile(result["latencies"], 99), percentile(idle, 99)

    cold, warm = startup_seconds()
    for check, result_ in (("/auth/me", me), ("/auth/login", login), ("bare", bare_result)):
        if result_.errors:
            raise RuntimeError(f"{check}: {result_.errors} failed requests")

    rows.append(
        Row(
            "login throughput (req/s)",
            f"{login.requests_per_second:.1f}",
            f"raw argon2id verify {raw:.1f}/s on {settings.hash_workers} threads",
            f"{login.requests_per_second / raw:.0%}",
            ">= 85%",
            login.requests_per_second / raw >= 0.85,
        )
    )
    rows.append(
        Row(
            "/auth/me p99 while logins saturate hashing (ms)",
            f"{busy_p99:.2f}",
            f"idle p99 {idle_p99:.2f} ms",
            f"{busy_p99 / idle_p99:.2f}x",
            "<= 3x",
            busy_p99 / idle_p99 <= 3,
        )
    )
    rows.append(
        Row(
            "/auth/me throughput (req/s)",
            f"{me.requests_per_second:.0f}",
            f"bare aiohttp JSON handler {bare_result.requests_per_second:.0f} req/s",
            f"{me.requests_per_second / bare_result.requests_per_second:.0%}",
            ">= 40%",
            me.requests_per_second / bare_result.requests_per_second >= 0.40,
        )
    )
    rows.append(
        Row("auth idle resident memory (MB)", f"{idle_rss:.0f}", "-", "-", "< 120", idle_rss < 120)
    )
    rows.append(
        Row("`sukverse up` ready, new data dir (s)", f"{cold:.2f}", "-", "-", "< 5", cold < 5)
    )
    rows.append(
        Row("`sukverse up` ready, existing data dir (s)", f"{warm:.2f}", "-", "-", "< 5", warm < 5)
    )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
    os._exit(0)
