"""User management on PostgreSQL and Kafka: a CSV import of 10,000 users through the real
auth service, against the same calls made to auth directly, with the CPU each process
spends during the import."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import psutil

from benchmarks.auth import Row, raw_argon2_rate
from benchmarks.harness import (
    create_database,
    data_dir,
    free_port,
    hack_server,
    http_json,
    process,
    sukverse,
    wait_ready,
)
from benchmarks.workshop import login
from sukverse_auth.settings import AuthSettings
from sukverse_user_mgmt.settings import UserMgmtSettings

ROWS = 10_000
DIRECT_ROWS = 2_000
SEQUENTIAL_ROWS = 1_000
CONCURRENCY = UserMgmtSettings().import_concurrency
HASH_SECONDS = 5.0
ADMIN = {"email": "admin@example.com", "password": "a long admin passphrase for benchmarks"}
CLIENT_SECRET = "a-client-secret-of-the-benchmark-0123"


@dataclass(frozen=True)
class Share:
    """CPU seconds a part of the system spent over a stretch of wall time."""

    name: str
    seconds: float
    wall: float

    @property
    def cores(self) -> float:
        return self.seconds / self.wall


@dataclass(frozen=True)
class Import:
    rows: int
    seconds: float
    shares: list[Share]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def _tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


class CpuMeter:
    """CPU seconds (user + system, every thread) of named groups of processes; a group
    given by its parent's pid counts the children it has at each reading."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups

    def read(self) -> tuple[float, dict[str, dict[int, float]]]:
        readings: dict[str, dict[int, float]] = {}
        for name, members in self.groups.items():
            readings[name] = {}
            for member in members():
                try:
                    times = member.cpu_times()
                except psutil.Error:
                    continue
                readings[name][member.pid] = times.user + times.system
        return time.perf_counter(), readings

    @staticmethod
    def between(
        start: tuple[float, dict[str, dict[int, float]]],
        end: tuple[float, dict[str, dict[int, float]]],
    ) -> list[Share]:
        wall = end[0] - start[0]
        return [
            Share(
                name,
                sum(
                    seconds - start[1][name].get(pid, 0.0) for pid, seconds in end[1][name].items()
                ),
                wall,
            )
            for name in end[1]
        ]


def machine_busy() -> float:
    """CPU seconds the whole machine has spent other than idle, since boot."""
    times = psutil.cpu_times()
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return float(sum(times)) - idle


def csv_file(rows: int, prefix: str) -> bytes:
    lines = ["email,full_name,role,organisation,locale"]
    lines += [f"{prefix}{n}@example.com,User {n},student,Org {n % 50},en-GB" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def import_file(url: str, headers: dict[str, str], data: bytes, meter: CpuMeter) -> Import:
    """POST the file and poll its status until it is done; the rows, time and CPU."""
    busy = machine_busy()
    start = meter.read()
    answer = http_json_raw("POST", f"{url}/imports", data, {**headers, "Content-Type": "text/csv"})
    deadline = time.monotonic() + 3600
    while True:
        report = http_json("GET", f"{url}/imports/{answer['id']}", None, headers)
        if report["status"] not in ("pending", "running"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the import did not finish: {report['progress']}")
        time.sleep(0.1)
    end = meter.read()
    busy = machine_busy() - busy
    if report["status"] != "done" or report["counts"]["created"] != report["progress"]["total"]:
        raise RuntimeError(
            f"the import went wrong: {report['status']} {report['counts']} {report['error']}"
        )
    shares = CpuMeter.between(start, end)
    shares.append(Share("whole machine (every process)", busy, end[0] - start[0]))
    return Import(report["progress"]["total"], end[0] - start[0], shares)


def http_json_raw(method: str, url: str, data: bytes, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


async def direct_auth(
    auth_url: str, client_secret: str, rows: int, concurrency: int, prefix: str
) -> tuple[float, list[str]]:
    """Rows per second of the call an import makes to auth for a new user (POST /users),
    `concurrency` rows at once, from this process; the new users' ids."""
    form = {
        "grant_type": "client_credentials",
        "client_id": "user_mgmt",
        "client_secret": client_secret,
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{auth_url}/auth/token", data=form) as response:
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        queue = iter(range(rows))
        created: list[str] = []

        async def worker() -> None:
            for n in queue:
                email = f"{prefix}{n}@example.com"
                body = {"email": email, "full_name": f"User {n}", "roles": ["student"]}
                async with session.post(f"{auth_url}/users", json=body, headers=headers) as made:
                    if made.status != 201:
                        raise RuntimeError(f"POST /users answered {made.status}")
                    created.append((await made.json())["id"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rate = rows / (time.perf_counter() - started)
        return rate, created


@contextmanager
def user_mgmt(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A user management process: its URL and pid."""
    port = free_port()
    with process(sukverse("serve", "user_mgmt", "--port", str(port)), env=env) as service:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/readyz", service)
        yield url, service.pid


def wait_for_profiles(url: str, headers: dict[str, str], user_ids: list[str]) -> None:
    """Until user management has the profiles of these users (from auth's events)."""
    deadline = time.monotonic() + 120
    for user_id in user_ids:
        while True:
            try:
                http_json("GET", f"{url}/profiles/{user_id}", None, headers)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("auth's events did not reach user management") from None
                time.sleep(0.1)


def run() -> tuple[list[Row], list[str]]:
    settings = AuthSettings()
    raw_hash = raw_argon2_rate(settings, HASH_SECONDS, hashing=True)
    with (
        data_dir() as path,
        hack_server("postgres.sh", path / "pg") as dsn,
        hack_server("kafka.sh", path / "kafka") as bootstrap,
    ):
        auth_db = asyncio.run(create_database(dsn, "auth"))
        users_db = asyncio.run(create_database(dsn, "user_mgmt"))
        auth_port = free_port()
        auth_url = f"http://127.0.0.1:{auth_port}"
        common = {
            "SUKVERSE_DATA_DIR": str(path),
            "SUKVERSE_LOG_LEVEL": "WARNING",
            "SUKVERSE_BUS": "kafka",
            "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        }
        auth_env = {
            **common,
            "SUKVERSE_DATABASE_URL": auth_db,
            "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
            "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
            "SUKVERSE_SERVICE_CLIENTS": json.dumps({"user_mgmt": CLIENT_SECRET}),
        }
        users_env = {
            **common,
            "SUKVERSE_DATABASE_URL": users_db,
            "SUKVERSE_AUTH_URL": auth_url,
            "SUKVERSE_AUTH_CLIENT_SECRET": CLIENT_SECRET,
            "SUKVERSE_IMPORT_MAX_ROWS": str(ROWS),
        }
        postmaster = int((path / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        kafka = int((path / "kafka" / "kafka.pid").read_text().strip())
        with process(sukverse("serve", "auth", "--port", str(auth_port)), env=auth_env) as auth:
            wait_ready(f"{auth_url}/readyz", auth)
            admin = {"Authorization": f"Bearer {login(auth_url, ADMIN)['access_token']}"}
            me = psutil.Process()

            def meter(users: int | None) -> CpuMeter:
                groups: dict[str, Callable[[], list[psutil.Process]]] = {
                    "auth": lambda: [psutil.Process(auth.pid)],
                    "PostgreSQL (every backend)": lambda: _tree(postmaster),
                    "Kafka broker": lambda: [psutil.Process(kafka)],
                    "this benchmark (client, polling)": lambda: [me],
                }
                if users is not None:
                    groups = {"user_mgmt": lambda: [psutil.Process(users)], **groups}
                return CpuMeter(groups)

            asyncio.run(direct_auth(auth_url, CLIENT_SECRET, 200, CONCURRENCY, "warm"))
            start = meter(None).read()
            direct, direct_ids = asyncio.run(
                direct_auth(auth_url, CLIENT_SECRET, DIRECT_ROWS, CONCURRENCY, "direct")
            )
            direct_shares = CpuMeter.between(start, meter(None).read())
            with user_mgmt(users_env) as (url, pid):
                wait_for_profiles(url, admin, direct_ids[-30:])
                imported = import_file(url, admin, csv_file(ROWS, "import"), meter(pid))
            sequential_env = {**users_env, "SUKVERSE_IMPORT_CONCURRENCY": "1"}
            with user_mgmt(sequential_env) as (url, pid):
                one_at_a_time = import_file(
                    url, admin, csv_file(SEQUENTIAL_ROWS, "seq"), meter(pid)
                )
    direct_cpu = {share.name: share.seconds / DIRECT_ROWS for share in direct_shares}
    return (
        rows(imported, one_at_a_time, direct, raw_hash, settings),
        profile(imported, direct_cpu),
    )


def rows(
    imported: Import, one_at_a_time: Import, direct: float, raw_hash: float, settings: AuthSettings
) -> list[Row]:
    ratio = imported.rate / direct
    sequential = one_at_a_time.rate / direct
    cpu = {share.name: share.seconds / imported.rows * 1000 for share in imported.shares}
    own = cpu["user_mgmt"] / cpu["auth"]
    return [
        Row(
            f"CSV import of {imported.rows:,} users, {CONCURRENCY} rows at once (rows/s)",
            f"{imported.rate:.0f}",
            f"auth called directly, the same POST /users, {CONCURRENCY} at once: "
            f"{direct:.0f} rows/s",
            f"{ratio:.0%}",
            "-",
            True,
        ),
        Row(
            f"the same one row at a time (import_concurrency=1), {one_at_a_time.rows:,} rows",
            f"{one_at_a_time.rate:.0f}",
            f"{direct:.0f} rows/s",
            f"{sequential:.0%}",
            "-",
            True,
        ),
        Row(
            "user_mgmt CPU per imported row (ms): the import is not the limit",
            f"{cpu['user_mgmt']:.2f}",
            f"auth's CPU per imported row {cpu['auth']:.2f} ms",
            f"{own:.0%}",
            "< 100%",
            own < 1.0,
        ),
        Row(
            "argon2id hashes per imported row",
            "0",
            f"raw argon2id hash {raw_hash:.1f}/s on {settings.hash_workers} threads",
            f"{imported.rate / raw_hash:.0f}x",
            "-",
            True,
        ),
    ]


def profile(imported: Import, direct_cpu: dict[str, float]) -> list[str]:
    """CPU per process: during the import, and per user when auth is called directly."""
    lines = [
        f"| process | import: CPU s in {imported.seconds:.1f} s | import: cores busy "
        "| import: CPU ms per row | direct POST /users: CPU ms per user |",
        "|---|---|---|---|---|",
    ]
    for share in imported.shares:
        direct = direct_cpu.get(share.name)
        lines.append(
            f"| {share.name} | {share.seconds:.1f} | {share.cores:.2f} | "
            f"{share.seconds / imported.rows * 1000:.2f} | "
            f"{'-' if direct is None else f'{direct * 1000:.2f}'} |"
        )
    return lines


if __name__ == "__main__":
    table, shares = run()
    for row in table:
        print(row)
    print("\n".join(shares))
    os._exit(0)
