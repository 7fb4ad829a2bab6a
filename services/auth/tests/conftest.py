"""Fixtures of the auth service tests: the real app on each tier (see the root conftest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sukverse_auth.app import create_app
from sukverse_auth.settings import AuthSettings
from sukverse_common.events.bus import Bus
from sukverse_common.events.envelope import CloudEvent

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "a long admin passphrase for tests"
PASSWORD = "correct horse battery staple"
OPERATOR_SECRET = "operator-secret-0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, bus_settings: dict[str, Any]) -> AuthSettings:
    return AuthSettings(
        data_dir=tmp_path,
        database_url=database_url,
        **bus_settings,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        service_clients={"operator": OPERATOR_SECRET},
        login_max_failures=3,
        login_lockout_seconds=60,
        login_address_limit=10,
        outbox_poll_seconds=0.05,
        argon2_memory_kib=8 * 1024,  # light hashing keeps the suite quick; the policy is the same
        argon2_time_cost=1,
    )


Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def client(
    settings: AuthSettings, bus: Bus, published: list[CloudEvent], aiohttp_client: MakeClient
) -> Client:
    # The test's own subscription (`published`) is made before the bus starts.
    # aiohttp_client comes last, so the app stops before its database is dropped.
    client = await aiohttp_client(create_app(settings, bus=bus))
    await bus.start()
    return client


class AuthApi:
    """Short calls for the flows most tests start with, all through HTTP."""

    admin_email = ADMIN_EMAIL
    admin_password = ADMIN_PASSWORD
    password = PASSWORD
    operator_secret = OPERATOR_SECRET

    def __init__(self, client: Client) -> None:
        self.client = client

    async def register(
        self, email: str, password: str = PASSWORD, full_name: str = "Ada Lovelace"
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/auth/register", json={"email": email, "password": password, "full_name": full_name}
        )
        assert response.status == 201, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/auth/login", json={"email": email, "password": password}
        )
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def token(self, email: str, password: str = PASSWORD) -> str:
        return str((await self.login(email, password))["access_token"])

    async def admin_token(self) -> str:
        return await self.token(ADMIN_EMAIL, ADMIN_PASSWORD)

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(client: Client) -> AuthApi:
    return AuthApi(client)
