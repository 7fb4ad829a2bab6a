"""Workshop service on PostgreSQL: recording progress against a bare aiohttp handler and
against a bare handler doing the same transaction with raw asyncpg, its latency at half that
rate, and reading a workshop of 200 steps x 10 substeps."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from benchmarks.auth import Row
from benchmarks.harness import (
    WrkResult,
    create_database,
    data_dir,
    free_port,
    hack_server,
    http_json,
    paced_latencies,
    percentile,
    process,
    sukverse,
    wait_ready,
    wrk,
)

SECONDS = 10
CONNECTIONS = 16
COPIED = ("workshops", "workshop_instructors", "steps", "substeps", "enrollments")
STUDENTS = 128  # with 16 connections, one student rarely has two requests in flight
STEPS, SUBSTEPS = 200, 10
PASSWORD = "correct horse battery staple"
ADMIN = {"email": "admin@example.com", "password": "a long admin passphrase for benchmarks"}

PROGRESS_LUA = """
-- wrk: POST {substep_id} as the enrolled students in turn, each over every substep in order:
-- every request is a first completion (#tokens x #substeps of them), every tenth a step's.
local tokens = %s
local substeps = %s
local n = 0
request = function()
  n = n + 1
  local substep = substeps[math.floor(n / #tokens) %% #substeps + 1]
  local body = string.format('{"substep_id": "%%s"}', substep)
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. tokens[(n %% #tokens) + 1]}
  return wrk.format("POST", %s, headers, body)
end
"""


def big_workshop() -> dict[str, Any]:
    text = "Run the command, read its output, and compare it with the expected result. " * 3
    return {
        "title": "A long workshop",
        "description": "200 steps of 10 substeps",
        "steps": [
            {
                "title": f"Step {s}",
                "substeps": [
                    {"title": f"Substep {s}.{n}", "body": text, "estimated_minutes": 5}
                    for n in range(SUBSTEPS)
                ],
            }
            for s in range(STEPS)
        ],
    }


def lua(path: Path, tokens: list[str], substeps: list[str], target: str) -> Path:
    def table(values: list[str]) -> str:
        return "{" + ", ".join(json.dumps(value) for value in values) + "}"

    path.write_text(PROGRESS_LUA % (table(tokens), table(substeps), json.dumps(target)))
    return path


async def copy_tables(source: str, target: str) -> None:
    """The workshop and its enrollments, copied into a database migrated the same way."""
    read, write = await asyncpg.connect(source), await asyncpg.connect(target)
    try:
        for table in COPIED:
            rows = io.BytesIO()
            await read.copy_from_table(table, output=rows, format="binary")
            rows.seek(0)
            await write.copy_to_table(table, source=rows, format="binary")
        await write.execute("ANALYZE")
    finally:
        await read.close()
        await write.close()


async def check_writes(dsn: str, result: WrkResult, check: str) -> None:
    """The rows a progress run wrote: one progress row and one event per request (the
    last requests in flight may be written but not counted), counters that agree with
    them, and an event for each completed step and workshop."""
    if result.errors:
        raise RuntimeError(f"{check}: {result.errors} failed requests")
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            progress = await conn.fetchval("SELECT count(*) FROM progress")
            substeps, steps, finished = await conn.fetchrow(
                "SELECT coalesce(sum(substeps_done), 0), coalesce(sum(steps_done), 0),"
                " count(completed_at) FROM enrollments"
            )
            events = dict(
                await conn.fetch(
                    "SELECT event_type, count(*) FROM outbox"
                    " WHERE event_type LIKE '%.completed.v1' GROUP BY event_type"
                )
            )
    finally:
        await conn.close()
    prefix = "io.sukverse.workshop."
    found = (
        progress,
        substeps,
        events.get(f"{prefix}substep.completed.v1", 0),
        steps,
        events.get(f"{prefix}step.completed.v1", 0),
        finished,
        events.get(f"{prefix}workshop.completed.v1", 0),
    )
    if not (
        result.requests <= progress <= result.requests + CONNECTIONS
        and found[0] == found[1] == found[2]
        and found[3] == found[4]
        and found[5] == found[6]
    ):
        raise RuntimeError(
            f"{check}: {result.requests} requests wrote (progress, substeps_done, substep "
            f"events, steps_done, step events, completed, workshop events) = {found}"
        )


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run() -> list[Row]:
    with data_dir() as path, hack_server("postgres.sh", path / "pg") as dsn:
        database = asyncio.run(create_database(dsn, "workshop"))
        bare_port, same_port, auth_port, port = free_port(), free_port(), free_port(), free_port()
        auth_url, url = f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{port}"
        common = {"SUKVERSE_DATA_DIR": str(path), "SUKVERSE_LOG_LEVEL": "WARNING"}
        auth_env = {
            **common,
            "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
            "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
            # Auth only hands out the students' tokens here: light hashing, quick set-up.
            "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
            "SUKVERSE_ARGON2_TIME_COST": "1",
        }
        workshop_env = {**common, "SUKVERSE_DATABASE_URL": database, "SUKVERSE_AUTH_URL": auth_url}
        with (
            process([sys.executable, "-m", "benchmarks.bare", str(bare_port)]) as bare,
            process(sukverse("serve", "auth", "--port", str(auth_port)), env=auth_env) as auth,
            process(sukverse("serve", "workshop", "--port", str(port)), env=workshop_env) as svc,
        ):
            wait_ready(f"http://127.0.0.1:{bare_port}/", bare)
            wait_ready(f"{auth_url}/readyz", auth)
            wait_ready(f"{url}/readyz", svc)
            admin = {"Authorization": f"Bearer {login(auth_url, ADMIN)['access_token']}"}
            students: list[tuple[str, str]] = []
            for i in range(STUDENTS):
                account = {"email": f"student{i}@example.com", "password": PASSWORD}
                user = http_json(
                    "POST", f"{auth_url}/auth/register", {**account, "full_name": f"S {i}"}
                )
                students.append((user["id"], login(auth_url, account)["access_token"]))
            workshop = http_json("POST", f"{url}/workshops", big_workshop(), admin)
            http_json(
                "POST",
                f"{url}/workshops/{workshop['id']}/enrollments",
                {"user_ids": [user_id for user_id, _ in students]},
                admin,
            )
            substeps = [sub["id"] for step in workshop["steps"] for sub in step["substeps"]]
            tokens = [token for _, token in students]
            target = f"/workshops/{workshop['id']}/progress"
            script = lua(path / "progress.lua", tokens, substeps, target)
            same_database = asyncio.run(create_database(dsn, "workshop_bare"))
            subprocess.run(
                sukverse("migrate", "workshop"),
                env={**os.environ, **workshop_env, "SUKVERSE_DATABASE_URL": same_database},
                check=True,
                capture_output=True,
            )
            asyncio.run(copy_tables(database, same_database))

            bare_post = wrk(
                f"http://127.0.0.1:{bare_port}/",
                seconds=SECONDS,
                connections=CONNECTIONS,
                script=lua(path / "bare.lua", tokens, substeps, "/"),
            )
            with process(
                [sys.executable, "-m", "benchmarks.bare_progress", str(same_port), same_database]
            ) as same:
                wait_ready(f"http://127.0.0.1:{same_port}/", same)
                before = cpu_seconds(same.pid)
                same_post = wrk(
                    f"http://127.0.0.1:{same_port}{target}",
                    seconds=SECONDS,
                    connections=CONNECTIONS,
                    script=script,
                )
                same_cpu = (cpu_seconds(same.pid) - before) / same_post.requests
            asyncio.run(check_writes(same_database, same_post, "same-work baseline"))
            before = cpu_seconds(svc.pid)
            progress = wrk(
                f"{url}{target}", seconds=SECONDS, connections=CONNECTIONS, script=script
            )
            svc_cpu = (cpu_seconds(svc.pid) - before) / progress.requests
            asyncio.run(check_writes(database, progress, "progress"))
            half = progress.requests_per_second / 2

            def later(n: int) -> tuple[dict[str, str], Any]:
                # Substeps from the far end, so these are new completions too.
                token = tokens[n % len(tokens)]
                substep = substeps[-1 - (n // len(tokens)) % len(substeps)]
                return {"Authorization": f"Bearer {token}"}, {"substep_id": substep}

            paced = asyncio.run(
                paced_latencies(f"{url}{target}", rate=half, seconds=SECONDS, post=later)
            )
            reads = asyncio.run(
                paced_latencies(
                    f"{url}/workshops/{workshop['id']}", headers=admin, rate=20, seconds=SECONDS
                )
            )
            cold = cold_reads(f"{url}/workshops/{workshop['id']}", admin)
    for check, result in (("progress", progress), ("bare", bare_post), ("same", same_post)):
        if result.errors:
            raise RuntimeError(f"{check}: {result.errors} failed requests")
    ratio = progress.requests_per_second / bare_post.requests_per_second
    same_ratio = progress.requests_per_second / same_post.requests_per_second
    p99, read_p50 = percentile(paced, 99), percentile(reads, 50)
    return [
        Row(
            "POST /workshops/{id}/progress on PostgreSQL (req/s)",
            f"{progress.requests_per_second:.0f}",
            f"bare aiohttp JSON POST handler {bare_post.requests_per_second:.0f} req/s",
            f"{ratio:.0%}",
            "-",
            True,
        ),
        Row(
            "the same, against the same transaction in a bare handler (req/s)",
            f"{progress.requests_per_second:.0f}",
            f"bare aiohttp + asyncpg, same statements {same_post.requests_per_second:.0f} req/s",
            f"{same_ratio:.0%}",
            ">= 25%",
            same_ratio >= 0.25,
        ),
        Row(
            "CPU per progress write, service process (ms)",
            f"{svc_cpu * 1000:.2f}",
            f"same-work bare handler {same_cpu * 1000:.2f} ms",
            f"{svc_cpu / same_cpu:.1f}x",
            "-",
            True,
        ),
        Row(
            f"progress p99 at half that rate, {half:.0f} req/s (ms)",
            f"{p99:.1f}",
            f"p50 {percentile(paced, 50):.1f} ms",
            "-",
            "< 50",
            p99 < 50,
        ),
        Row(
            f"GET /workshops/{{id}}, {STEPS} steps x {SUBSTEPS} substeps, p50 (ms)",
            f"{read_p50:.1f}",
            f"p99 {percentile(reads, 99):.1f} ms",
            "-",
            "< 20",
            read_p50 < 20,
        ),
        Row(
            "the same read right after an edit, nothing cached, p50 (ms)",
            f"{percentile(cold, 50):.1f}",
            f"p99 {percentile(cold, 99):.1f} ms",
            "-",
            "< 20",
            percentile(cold, 50) < 20,
        ),
    ]


def cold_reads(url: str, headers: dict[str, str], count: int = 40) -> list[float]:
    """Read latencies (ms), each right after a PATCH that changes the workshop."""
    latencies = []
    for n in range(count):
        http_json("PATCH", url, {"title": f"A long workshop, edition {n}"}, headers)
        started = time.perf_counter()
        http_json("GET", url, None, headers)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def login(auth_url: str, account: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = http_json("POST", f"{auth_url}/auth/login", account)
    return result


if __name__ == "__main__":
    for row in run():
        print(row)
    os._exit(0)
