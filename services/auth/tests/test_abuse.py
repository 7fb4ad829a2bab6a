"""Concurrent guessing, forged inputs and hostile configuration are refused."""

from __future__ import annotations

import asyncio
import base64
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from sukverse_auth.app import create_app
from sukverse_auth.settings import AuthSettings
from sukverse_common.db import create_engine


async def test_concurrent_guesses_cannot_pass_the_account_limit(client: Any, api: Any) -> None:
    await api.register("target@example.com")
    responses = await asyncio.gather(
        *(
            client.post(
                "/auth/login", json={"email": "target@example.com", "password": f"guess {i}"}
            )
            for i in range(9)
        )
    )
    statuses = sorted(response.status for response in responses)
    assert statuses.count(401) <= 3  # login_max_failures in the test settings
    assert set(statuses) <= {401, 429}
    after = await client.post(
        "/auth/login", json={"email": "target@example.com", "password": api.password}
    )
    assert after.status == 429


async def test_concurrent_guesses_cannot_pass_the_address_limit(client: Any) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/auth/login", json={"email": f"u{i}@example.com", "password": "x"})
            for i in range(30)
        )
    )
    statuses = [response.status for response in responses]
    assert statuses.count(401) <= 10  # login_address_limit in the test settings
    assert set(statuses) <= {401, 429}


async def test_forwarded_addresses_count_only_behind_a_trusted_proxy(
    settings: AuthSettings, aiohttp_client: Any
) -> None:
    behind = settings.model_copy(update={"trusted_proxies": [ip_network("127.0.0.0/8")]})
    client = await aiohttp_client(create_app(behind))
    for i in range(10):
        await client.post(
            "/auth/login",
            json={"email": f"a{i}@example.com", "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
    blocked = await client.post(
        "/auth/login",
        json={"email": "b@example.com", "password": "x"},
        headers={"X-Forwarded-For": "203.0.113.7"},
    )
    other = await client.post(
        "/auth/login",
        json={"email": "b@example.com", "password": "x"},
        headers={"X-Forwarded-For": "198.51.100.9"},
    )
    assert blocked.status == 429
    assert other.status == 401


async def test_a_forwarded_header_from_an_untrusted_peer_is_ignored(client: Any) -> None:
    for i in range(10):
        await client.post(
            "/auth/login",
            json={"email": f"a{i}@example.com", "password": "x"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
    response = await client.post(
        "/auth/login",
        json={"email": "c@example.com", "password": "x"},
        headers={"X-Forwarded-For": "198.51.100.1"},
    )
    assert response.status == 429


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/login", {"email": "a\u0000@example.com", "password": "x"}),
        (
            "/auth/register",
            {
                "email": "n@example.com",
                "password": "correct horse battery staple",
                "full_name": "Nul\u0000",
            },
        ),
    ],
)
async def test_nul_characters_are_a_422(client: Any, path: str, body: dict[str, str]) -> None:
    response = await client.post(path, json=body)
    assert response.status == 422
    assert "NUL" in (await response.json())["errors"][0]["reason"]


async def test_hostile_token_and_client_headers_are_401(client: Any) -> None:
    nested = base64.urlsafe_b64encode(b"[" * 3000).decode().rstrip("=")
    assert (
        await client.get("/auth/me", headers={"Authorization": f"Bearer {nested}.e30.x"})
    ).status == 401
    response = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic é"},
    )
    assert response.status == 401


async def test_two_admins_demoting_each_other_leave_one(client: Any, api: Any) -> None:
    admin = api.bearer(await api.admin_token())
    second = await api.register("second@example.com")
    await client.put(f"/users/{second['id']}/roles", json={"roles": ["admin"]}, headers=admin)
    second_token = api.bearer(await api.token("second@example.com"))
    first_id = (await (await client.get("/auth/me", headers=admin)).json())["id"]
    responses = await asyncio.gather(
        client.put(f"/users/{second['id']}/roles", json={"roles": ["student"]}, headers=admin),
        client.put(f"/users/{first_id}/roles", json={"roles": ["student"]}, headers=second_token),
    )
    assert sorted(r.status for r in responses) == [200, 409]
    # The demoted one's tokens are revoked: read as whoever is still an admin.
    tokens = [await api.admin_token(), await api.token("second@example.com")]
    mes = [await (await client.get("/auth/me", headers=api.bearer(t))).json() for t in tokens]
    [reader] = [api.bearer(t) for t, me in zip(tokens, mes, strict=True) if "admin" in me["roles"]]
    admins = 0
    for user_id in (first_id, second["id"]):
        user = await (await client.get(f"/users/{user_id}", headers=reader)).json()
        admins += "admin" in user["roles"]
    assert admins == 1


async def test_the_admin_email_of_someone_elses_account_does_not_promote_it(
    tmp_path: Path,
) -> None:
    first = AuthSettings(data_dir=tmp_path)
    squatter = "ops@corp.example"
    async with TestClient(TestServer(create_app(first))) as client:
        response = await client.post(
            "/auth/register",
            json={
                "email": squatter,
                "password": "the squatter's own passphrase",
                "full_name": "Squatter",
            },
        )
        assert response.status == 201
    configured = AuthSettings(
        data_dir=tmp_path, admin_email=squatter, admin_password="the operator's passphrase 42"
    )
    runner = web.AppRunner(create_app(configured))
    try:
        with pytest.raises(RuntimeError, match="refusing to make it admin"):
            await runner.setup()
    finally:
        await runner.cleanup()


def test_sql_parameters_never_reach_logs() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    assert engine.sync_engine.hide_parameters


def test_the_kafka_bus_without_brokers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="kafka_bootstrap_servers"):
        AuthSettings(data_dir=tmp_path, bus="kafka")
