"""Fixtures of the analytics service tests: the real app on each tier, fed through the bus."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sukverse_analytics.app import create_app
from sukverse_analytics.settings import AnalyticsSettings
from sukverse_common.app import build_bus
from sukverse_common.events.bus import Bus, Message
from sukverse_common.events.contracts import EventData
from sukverse_common.events.envelope import CloudEvent

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
HANDLED = re.compile(
    r'^sukverse_events_handled_total\{[^}]*consumer="analytics"[^}]*\} (\S+)$', re.M
)


class Clock:
    """The service's clock: a fixed instant a test moves forward."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Analytics:
    """One analytics service with its own database and bus, and calls through HTTP."""

    def __init__(self, client: Client, bus: Bus, identity: Any, clock: Clock) -> None:
        self.client = client
        self.bus = bus
        self.identity = identity
        self.clock = clock
        self.sent = 0

    def account(self, name: str, *roles: str) -> Any:
        return self.identity.account(name, *roles)

    @property
    def admin(self) -> Any:
        return self.identity.account("admin", "admin")

    async def publish(self, events: Sequence[tuple[EventData, str] | CloudEvent]) -> None:
        """Publish events (data and key, or a ready envelope to resend), in order, then
        wait until the service has handled every event published to it so far."""
        messages = []
        for item in events:
            if isinstance(item, CloudEvent):
                messages.append(
                    Message(f"sukverse.{item.type.split('.')[2]}", item.subject or "", item)
                )
            else:
                data, key = item
                messages.append(Message(data.topic(), key, CloudEvent.wrap(data, subject=key)))
        for message in messages:
            await self.bus.publish([message])
        self.sent += len(messages)
        await self.wait_handled(self.sent)

    async def handled(self) -> int:
        text = await (await self.client.get("/metrics")).text()
        return round(sum(float(value) for value in HANDLED.findall(text)))

    async def wait_handled(self, count: int) -> None:
        deadline = time.monotonic() + 20
        while (seen := await self.handled()) < count:
            assert time.monotonic() < deadline, f"handled {seen} of {count} events"
            await asyncio.sleep(0.02)

    async def get(self, path: str, caller: Any = None, status: int = 200) -> Any:
        caller = caller or self.admin
        response = await self.client.get(path, headers=caller.headers)
        assert response.status == status, await response.text()
        return await response.json()

    async def figures(self, workshop_id: uuid.UUID) -> dict[str, Any]:
        body: dict[str, Any] = await self.get(f"/analytics/workshops/{workshop_id}")
        return body

    async def students(self, workshop_id: uuid.UUID) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
            page = await self.get(f"/analytics/workshops/{workshop_id}/students{query}")
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items


ServiceFactory = Callable[[], Awaitable[Analytics]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def buses() -> AsyncIterator[list[Bus]]:
    """The buses of the services a test started, stopped after the services."""
    made: list[Bus] = []
    yield made
    for bus in made:
        await bus.stop()


@pytest.fixture
def fresh_database(
    tier: str, request: pytest.FixtureRequest
) -> Callable[[], Awaitable[str]] | None:
    """Makes more PostgreSQL databases on the real tier (None when embedded); requested
    before the apps, so that they are dropped only after the apps stopped."""
    if tier != "real":
        return None
    make: Callable[[], Awaitable[str]] = request.getfixturevalue("new_database")
    return make


@pytest.fixture
def make_service(
    tmp_path: Path,
    tier: str,
    database_url: str,
    bus_settings: dict[str, Any],
    identity: Any,
    clock: Clock,
    buses: list[Bus],
    fresh_database: Callable[[], Awaitable[str]] | None,
    aiohttp_client: MakeClient,
) -> ServiceFactory:
    """Start an analytics service; each call a new one with a fresh database and bus."""
    made, new_database = buses, fresh_database

    async def make() -> Analytics:
        url, settings = database_url, dict(bus_settings)
        if made and new_database is not None:
            url = await new_database()
            settings["kafka_topic_prefix"] = f"t{uuid.uuid4().hex[:12]}."
        data_dir = tmp_path / f"service-{len(made)}"
        data_dir.mkdir()
        service_settings = AnalyticsSettings(
            data_dir=data_dir,
            database_url=url,
            **settings,
            auth_url=identity.url,
            outbox_poll_seconds=0.05,
            gauges_max_age_seconds=0.5,
        )
        bus = build_bus(service_settings)
        made.append(bus)
        client = await aiohttp_client(create_app(service_settings, bus=bus, clock=clock))
        await bus.start()
        return Analytics(client, bus, identity, clock)

    return make


@pytest.fixture
async def service(make_service: ServiceFactory) -> Analytics:
    return await make_service()
