"""Fixtures of the user management tests: the real app on each tier, calling a real auth
service as its machine client (see the root conftest)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sukverse_common.events.bus import Bus, Message
from sukverse_common.events.contracts import UserRegistered, UserRolesChanged
from sukverse_common.events.envelope import CloudEvent
from sukverse_user_mgmt.app import create_app
from sukverse_user_mgmt.settings import UserMgmtSettings

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, bus_settings: dict[str, Any], identity: Any
) -> UserMgmtSettings:
    return UserMgmtSettings(
        data_dir=tmp_path,
        database_url=database_url,
        **bus_settings,
        auth_url=identity.url,
        auth_client_id=identity.client_id,
        auth_client_secret=identity.client_secret,
        outbox_poll_seconds=0.05,
    )


@pytest.fixture
async def client(settings: UserMgmtSettings, bus: Bus, aiohttp_client: MakeClient) -> Client:
    # aiohttp_client comes last, so the app stops before its database is dropped.
    client = await aiohttp_client(create_app(settings, bus=bus))
    await bus.start()
    return client


@pytest.fixture(scope="session")
def service_headers(identity: Any) -> dict[str, str]:
    """Headers of the identity service's machine client (the `service` role)."""
    return dict(identity.machine_headers())


class ProfilesApi:
    """Short calls through HTTP, and the auth service's events as the tests publish them."""

    def __init__(self, client: Client, bus: Bus, identity: Any) -> None:
        self.client = client
        self.bus = bus
        self.identity = identity

    def account(self, name: str, *roles: str) -> Any:
        return self.identity.account(name, *roles)

    @property
    def admin(self) -> Any:
        return self.identity.account("admin", "admin")

    async def publish(self, data: Any, event: CloudEvent | None = None) -> CloudEvent:
        key = str(data.user_id)
        event = event or CloudEvent.wrap(data, subject=key)
        await self.bus.publish([Message(data.topic(), key, event)])
        return event

    async def registered(
        self, account: Any, *, full_name: str | None = None, wait: bool = True
    ) -> UserRegistered:
        """Publish the account's registration and wait until its profile exists."""
        data = UserRegistered(
            user_id=account.id,
            email=account.email,
            full_name=full_name or account.email.split("-")[0].title(),
            roles=sorted(account.roles),
            registered_at=datetime.now(UTC),
        )
        await self.publish(data)
        if wait:
            await self.wait_for(account.id, lambda p: p["email"] == account.email)
        return data

    async def roles_changed(self, user_id: uuid.UUID, roles: list[str]) -> UserRolesChanged:
        data = UserRolesChanged(user_id=user_id, roles=roles, previous_roles=[], changed_by=None)
        await self.publish(data)
        return data

    async def get(self, user_id: uuid.UUID | str, caller: Any = None) -> Any:
        caller = caller or self.admin
        return await self.client.get(f"/profiles/{user_id}", headers=caller.headers)

    async def wait_for(
        self, user_id: uuid.UUID, predicate: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """The profile once `predicate` holds of it, polling with a deadline."""
        deadline = time.monotonic() + 15
        while True:
            response = await self.get(user_id)
            if response.status == 200:
                body: dict[str, Any] = await response.json()
                if predicate(body):
                    return body
            assert time.monotonic() < deadline, f"profile {user_id}: {await response.text()}"
            await asyncio.sleep(0.05)

    async def patch(
        self, user_id: uuid.UUID, body: dict[str, Any], caller: Any, status: int = 200
    ) -> dict[str, Any]:
        response = await self.client.patch(
            f"/profiles/{user_id}", json=body, headers=caller.headers
        )
        assert response.status == status, await response.text()
        result: dict[str, Any] = await response.json()
        return result


@pytest.fixture
def api(client: Client, bus: Bus, identity: Any) -> ProfilesApi:
    return ProfilesApi(client, bus, identity)
