"""The hashing workers: real `sukverse_auth.hashing` processes, light argon2 parameters;
and how many there are by default."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from sukverse_auth.passwords import Hasher
from sukverse_auth.settings import available_cpus


def _workers() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children()
        if "sukverse_auth.hashing" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE
    ]


@pytest.fixture
async def hasher(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hasher]:
    monkeypatch.setenv("SUKVERSE_ADMIN_PASSWORD", "kept from the workers")
    hasher = Hasher(time_cost=1, memory_kib=8 * 1024, parallelism=1, workers=2, idle_seconds=0.5)
    yield hasher
    await hasher.close()
    assert _workers() == []


async def test_a_hash_verifies_and_another_password_does_not(hasher: Hasher) -> None:
    hashed = await hasher.hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert await hasher.verify(hashed, "correct horse battery staple")
    assert not await hasher.verify(hashed, "Correct horse battery staple")
    assert not await hasher.verify("$argon2id$not-a-hash", "correct horse battery staple")
    assert not await hasher.verify(None, "correct horse battery staple")  # no such account


async def test_workers_stop_when_idle_and_start_again(hasher: Hasher) -> None:
    await asyncio.gather(*(hasher.hash(f"password {n}") for n in range(4)))
    assert 1 <= hasher.processes <= 2
    assert 1 <= len(_workers()) <= 2
    await asyncio.sleep(1.0)
    assert hasher.processes == 0
    assert _workers() == []
    assert await hasher.verify(await hasher.hash("again"), "again")
    assert hasher.processes >= 1


async def test_a_killed_worker_is_replaced_by_the_next_hash(hasher: Hasher) -> None:
    await hasher.hash("first")
    for worker in _workers():
        worker.kill()
        worker.wait(5)
    assert await hasher.verify(await hasher.hash("second"), "second")


async def test_a_cancelled_hash_leaves_the_workers_usable(hasher: Hasher) -> None:
    slow = Hasher(time_cost=16, memory_kib=64 * 1024, parallelism=1, workers=1)
    try:
        assert not await slow.verify(None, "waits for the decoy hash")
        task = asyncio.ensure_future(slow.hash("cancelled half-way"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await slow.verify(await slow.hash("next"), "next")
    finally:
        await slow.close()


async def test_workers_get_no_settings_and_run_at_the_idle_policy(hasher: Hasher) -> None:
    await hasher.hash("anything")
    workers = _workers()
    assert workers
    for worker in workers:
        assert not [name for name in worker.environ() if "SUKVERSE" in name]
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == 19
        assert os.sched_getscheduler(worker.pid) == os.SCHED_IDLE


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),  # cgroup v2, a limit of 1.5 CPUs
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, None),  # no limit: the CPUs it may run on
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files
    ],
)
def test_the_default_workers_are_the_cpus_of_the_container(
    tmp_path: Path, files: dict[str, str], cpus: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    runnable = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == (runnable if cpus is None else min(cpus, runnable))
