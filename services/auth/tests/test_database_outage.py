"""PostgreSQL restarts under a running service: 503s while it is down, then recovery."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sukverse_auth.app import create_app
from sukverse_auth.settings import AuthSettings

pytestmark = pytest.mark.real

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def own_postgres(private_postgres_server: Any) -> Any:
    """A cluster of this test's own, so stopping it disturbs nothing else."""
    admin = await asyncpg.connect(private_postgres_server.address)
    await admin.execute('CREATE DATABASE "outage"')
    await admin.close()
    return private_postgres_server


async def _wait_for_status(client: Any, path: str, status: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while (await client.get(path)).status != status:
        assert time.monotonic() < deadline, f"{path} never answered {status}"
        await asyncio.sleep(0.1)


async def test_readiness_and_503s_follow_the_database(
    own_postgres: Any, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = AuthSettings(
        data_dir=tmp_path,
        database_url=own_postgres.address.rsplit("/", 1)[0] + "/outage",
        argon2_memory_kib=8 * 1024,
        argon2_time_cost=1,
    )
    client = await aiohttp_client(create_app(settings))
    register = {"email": "o@example.com", "password": PASSWORD, "full_name": "O"}
    assert (await client.post("/auth/register", json=register)).status == 201

    own_postgres.stop()
    await _wait_for_status(client, "/readyz", 503)
    down = await client.post("/auth/login", json={"email": "o@example.com", "password": PASSWORD})
    assert down.status == 503
    assert down.content_type == "application/problem+json"
    body = await down.json()
    assert body["type"].endswith("/unavailable")
    assert "asyncpg" not in str(body) and "127.0.0.1" not in str(body)

    own_postgres.start()
    await _wait_for_status(client, "/readyz", 200)
    up = await client.post("/auth/login", json={"email": "o@example.com", "password": PASSWORD})
    assert up.status == 200
