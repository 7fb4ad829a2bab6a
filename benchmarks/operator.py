"""The cohort operator on the real tier: a kube-apiserver from hack/kube.sh, the services as
`sukverse serve` processes on PostgreSQL and Kafka, and `sukverse operator` signed in as
the chart's ServiceAccount. A cohort of 1,000 students from apply to Ready, through the
operator and through `sukverse apply`, against the same accounts and enrollment written by
a bare REST loop at the same concurrency; the unchanged re-reconcile and the one student
added, by the writes they make; 100 cohorts of 50 at once, with the operator's memory and
the API server's request rate."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml

from benchmarks.auth import Row
from benchmarks.cluster import (
    CACHE,
    Operator,
    apiserver_requests,
    eventually,
    install_operator_chart,
    kubectl,
)
from benchmarks.harness import (
    ROOT,
    create_database,
    data_dir,
    free_port,
    hack_server,
    http_json,
    process,
    sukverse,
    wait_ready,
)

STUDENTS = 1000
MANY, EACH = 100, 50
CONCURRENCY = 16  # the operator's default
ADMIN = {"email": "admin@example.com", "password": "a long admin passphrase for tests"}
SECRET = "operator-bench-secret-0123456789abcdef"
SERVICES = ("auth", "workshop", "quiz", "analytics", "certificate")


@contextmanager
def kube(directory: Path) -> Iterator[Path]:
    script = str(ROOT / "hack" / "kube.sh")
    subprocess.run(["bash", script, "install"], check=True, capture_output=True)
    path = subprocess.run(
        ["bash", script, "start", str(directory)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        yield Path(path)
    finally:
        subprocess.run(["bash", script, "stop", str(directory)], check=True, capture_output=True)


def cohort(name: str, students: int, prefix: str) -> dict[str, Any]:
    return {
        "apiVersion": "sukverse.io/v1alpha1",
        "kind": "SukverseCohort",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "workshop": {
                "title": f"Cohort {name}",
                "steps": [
                    {"key": f"s{n}", "title": f"Step {n}", "substeps": [{"title": "Read"}]}
                    for n in range(5)
                ],
            },
            "students": [
                {"email": f"{prefix}-{n:05d}@example.com", "name": f"Student {n}"}
                for n in range(students)
            ],
        },
    }


def apply(kubeconfig: Path, documents: list[dict[str, Any]]) -> None:
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(documents))


def ready(kubeconfig: Path, names: set[str]) -> bool:
    found = json.loads(kubectl(kubeconfig, "get", "cohorts", "-n", "default", "-o", "json").stdout)
    done = {
        item["metadata"]["name"]
        for item in found["items"]
        if (item.get("status") or {}).get("phase") == "Ready"
        and item["status"].get("observedGeneration") == item["metadata"]["generation"]
    }
    return names <= done


def wait_ready_cohorts(kubeconfig: Path, names: set[str], timeout: float) -> float:
    started = time.perf_counter()
    eventually(lambda: ready(kubeconfig, names), f"{len(names)} cohorts Ready", timeout)
    return time.perf_counter() - started


async def bare_loop(auth: str, workshop: str, token: str, students: int) -> float:
    """The writes the operator makes for a new cohort, as a bare client makes them: an
    account per student, a workshop, one enrollment call."""
    headers = {"Authorization": f"Bearer {token}"}
    limit = asyncio.Semaphore(CONCURRENCY)
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as http:

        async def account(n: int) -> str:
            async with limit:
                body = {"email": f"bare-{n:05d}@example.com", "full_name": f"S {n}"}
                lookup = {"email": body["email"]}
                async with http.get(f"{auth}/users", params=lookup) as response:
                    assert response.status == 200
                async with http.post(f"{auth}/users", json={**body, "roles": ["student"]}) as r:
                    assert r.status == 201, await r.text()
                    return str((await r.json())["id"])

        ids = await asyncio.gather(*(account(n) for n in range(students)))
        spec = cohort("bare", 0, "bare")["spec"]["workshop"]
        async with http.post(f"{workshop}/workshops", json=spec) as response:
            created = await response.json()
        for i in range(0, len(ids), 1000):
            async with http.post(
                f"{workshop}/workshops/{created['id']}/enrollments",
                json={"user_ids": ids[i : i + 1000]},
            ) as response:
                assert response.status == 200, await response.text()
    return time.perf_counter() - started


def operator_token(auth: str) -> str:
    import urllib.parse
    import urllib.request

    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": "operator", "client_secret": SECRET}
    ).encode()
    with urllib.request.urlopen(f"{auth}/auth/token", data=form, timeout=30) as response:
        return str(json.loads(response.read())["access_token"])


def run() -> list[Row]:
    with (
        data_dir() as path,
        hack_server("postgres.sh", path / "pg") as dsn,
        hack_server("kafka.sh", path / "kafka") as kafka,
        kube(path / "kube") as kubeconfig,
        ExitStack() as stack,
    ):
        helm = CACHE / "bin" / "helm"
        operator_kubeconfig = install_operator_chart(helm, kubeconfig, path)
        ports = {name: free_port() for name in SERVICES}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        common = {
            "SUKVERSE_DATA_DIR": str(path),
            "SUKVERSE_LOG_LEVEL": "WARNING",
            "SUKVERSE_BUS": "kafka",
            "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "SUKVERSE_AUTH_URL": urls["auth"],
        }
        own = {
            "auth": {
                "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
                "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
                "SUKVERSE_SERVICE_CLIENTS": json.dumps({"operator": SECRET}),
            }
        }
        for name in SERVICES:
            env = {
                **common,
                **own.get(name, {}),
                "SUKVERSE_DATABASE_URL": asyncio.run(create_database(dsn, name)),
            }
            subprocess.run(
                sukverse("migrate", name),
                env={**os.environ, **env},
                check=True,
                capture_output=True,
            )
            proc = stack.enter_context(
                process(sukverse("serve", name, "--port", str(ports[name])), env=env)
            )
            wait_ready(f"{urls[name]}/readyz", proc)
        operator_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SUKVERSE_")},
            "KUBECONFIG": str(operator_kubeconfig),
            "SUKVERSE_DATA_DIR": str(path),
            "SUKVERSE_OPERATOR_CLIENT_SECRET": SECRET,
            "SUKVERSE_RETRY_DELAY_SECONDS": "1",
            # A full reconcile of an unchanged cohort every 10 s (timer ticks every 5 s).
            "SUKVERSE_SYNC_INTERVAL_SECONDS": "5",
            "SUKVERSE_RESYNC_INTERVAL_SECONDS": "10",
            **{f"SUKVERSE_{name.upper()}_URL": url for name, url in urls.items()},
        }
        operator = Operator(operator_env, path / "operator.log", free_port())
        operator.start()
        stack.callback(operator.stop)

        token = http_json("POST", f"{urls['auth']}/auth/login", ADMIN)["access_token"]
        bare = asyncio.run(bare_loop(urls["auth"], urls["workshop"], token, STUDENTS))

        big = cohort("big", STUDENTS, "big")
        apply(kubeconfig, [big])
        through_operator = wait_ready_cohorts(kubeconfig, {"big"}, 300)
        key = json.loads(kubectl(kubeconfig, "get", "cohort", "big", "-o", "json").stdout)[
            "metadata"
        ]["uid"]

        # Unchanged: the timer's next full reconcile (drift repair) writes nothing, to the
        # services or to the API server.
        since = len(operator.lines())
        writes = {"PATCH", "PUT", "POST", "DELETE"}
        patches = apiserver_requests(kubeconfig, resource="sukversecohorts", verbs=writes)
        eventually(lambda: operator.reconciles(key, since), "the timer's full reconcile", 60)
        time.sleep(2)
        unchanged_writes = sum(int(line["writes"]) for line in operator.reconciles(key, since))
        api_writes = (
            apiserver_requests(kubeconfig, resource="sukversecohorts", verbs=writes) - patches
        )

        # One student added.
        since = len(operator.lines())
        big["spec"]["students"].append({"email": "big-added@example.com", "name": "Added"})
        started = time.perf_counter()
        apply(kubeconfig, [big])
        wait_ready_cohorts(kubeconfig, {"big"}, 60)
        added_seconds = time.perf_counter() - started
        added_writes = sum(int(line["writes"]) for line in operator.reconciles(key, since))

        # The same cohort through `sukverse apply`, against the same services.
        local = cohort("local", STUDENTS, "local")
        (path / "local.yaml").write_text(yaml.safe_dump(local))
        started = time.perf_counter()
        applied = subprocess.run(
            sukverse("apply", "-f", str(path / "local.yaml")),
            env={**operator_env, "SUKVERSE_DATA_DIR": str(path / "local")},
            capture_output=True,
            text=True,
            check=False,
        )
        through_apply = time.perf_counter() - started
        if applied.returncode != 0 or "Ready" not in applied.stdout:
            raise RuntimeError(f"sukverse apply failed: {applied.stdout}{applied.stderr}")

        # Many cohorts at once.
        assert operator.process is not None
        memory = psutil.Process(operator.process.pid)
        requests_before = apiserver_requests(kubeconfig)
        names = {f"many-{n:03d}" for n in range(MANY)}
        started = time.perf_counter()
        apply(kubeconfig, [cohort(name, EACH, name) for name in sorted(names)])
        peak = 0.0
        while not ready(kubeconfig, names):
            peak = max(peak, memory.memory_info().rss / 2**20)
            if time.perf_counter() - started > 600:
                raise RuntimeError("100 cohorts were not Ready in 10 minutes")
            time.sleep(0.5)
        many_seconds = time.perf_counter() - started
        peak = max(peak, memory.memory_info().rss / 2**20)
        rate = (apiserver_requests(kubeconfig) - requests_before) / many_seconds

    return [
        Row(
            f"{STUDENTS} students, apply to Ready through the operator (s)",
            f"{through_operator:.1f}",
            f"bare REST loop {bare:.1f} s",
            f"{through_operator / bare:.2f}x",
            "< 30 s",
            through_operator < 30,
        ),
        Row(
            f"{STUDENTS} students through `sukverse apply` (s)",
            f"{through_apply:.1f}",
            f"bare REST loop {bare:.1f} s",
            f"{through_apply / bare:.2f}x",
            "< 30 s",
            through_apply < 30,
        ),
        Row(
            "unchanged cohort re-reconciled: service writes / API server writes",
            f"{unchanged_writes} / {api_writes:.0f}",
            "-",
            "-",
            "0 / 0",
            unchanged_writes == 0 and api_writes == 0,
        ),
        Row(
            "one student added: service writes",
            str(added_writes),
            "-",
            "-",
            "<= 3",
            0 < added_writes <= 3,
        ),
        Row(
            "one student added: apply to Ready again (s)",
            f"{added_seconds:.2f}",
            "-",
            "-",
            "< 2 s",
            added_seconds < 2,
        ),
        Row(
            f"{MANY} cohorts of {EACH} at once: all Ready (s)",
            f"{many_seconds:.1f}",
            "-",
            "-",
            "< 180 s",
            many_seconds < 180,
        ),
        Row(
            "operator resident memory, peak during those (MB)",
            f"{peak:.0f}",
            "-",
            "-",
            "< 250",
            peak < 250,
        ),
        Row(
            "API server requests during those (req/s)",
            f"{rate:.1f}",
            "-",
            "-",
            "reported",
            True,
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row, file=sys.stdout)
