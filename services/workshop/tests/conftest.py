"""Fixtures of the workshop service tests: the real app on each tier (see the root
conftest), real identities from a real auth service, and short calls through HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from sukverse_common.events.bus import Bus
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.keys import DATABASE, OUTBOX
from sukverse_workshop.app import create_app
from sukverse_workshop.settings import WorkshopSettings

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
Headers = dict[str, str]


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, bus_settings: dict[str, Any], identity: Any
) -> WorkshopSettings:
    return WorkshopSettings(
        data_dir=tmp_path,
        database_url=database_url,
        **bus_settings,
        auth_url=identity.url,
        outbox_poll_seconds=0.05,
    )


@pytest.fixture
async def client(
    settings: WorkshopSettings, bus: Bus, published: list[CloudEvent], aiohttp_client: MakeClient
) -> Client:
    client = await aiohttp_client(create_app(settings, bus=bus))
    await bus.start()
    return client


@dataclass(frozen=True)
class People:
    """The personas every authorization test speaks for; `None` headers are anonymous."""

    student: Any
    other_student: Any
    instructor: Any
    other_instructor: Any
    admin: Any

    def headers(self) -> dict[str, Headers]:
        return {
            "anonymous": {},
            "student": self.student.headers,
            "other_student": self.other_student.headers,
            "instructor": self.instructor.headers,
            "other_instructor": self.other_instructor.headers,
            "admin": self.admin.headers,
        }


@pytest.fixture(scope="session")
def people(identity: Any) -> People:
    return People(
        student=identity.account("student-a"),
        other_student=identity.account("student-b"),
        instructor=identity.account("instructor-a", "instructor"),
        other_instructor=identity.account("instructor-b", "instructor"),
        admin=identity.account("admin", "admin"),
    )


def workshop_body(
    steps: int = 2, substeps: int = 2, *, title: str = "Kubernetes"
) -> dict[str, Any]:
    return {
        "title": title,
        "description": "Learn by doing",
        "steps": [
            {
                "title": f"Step {i}",
                "substeps": [
                    {"title": f"Substep {i}.{j}", "body": f"Do **{i}.{j}**", "estimated_minutes": 5}
                    for j in range(substeps)
                ],
            }
            for i in range(steps)
        ],
    }


def patchable(workshop: dict[str, Any]) -> list[dict[str, Any]]:
    """The workshop's steps as a PATCH `steps` list that changes nothing."""
    return [
        {
            "id": step["id"],
            "key": step["key"],
            "title": step["title"],
            "substeps": [
                {k: sub[k] for k in ("id", "key", "title", "body", "estimated_minutes")}
                for sub in step["substeps"]
            ],
        }
        for step in workshop["steps"]
    ]


def kind(event: CloudEvent) -> str:
    """`workshop.created` for `io.sukverse.workshop.workshop.created.v1`."""
    return ".".join(event.type.split(".")[3:5])


class WorkshopApi:
    """Short calls for the flows most tests start with, all through HTTP."""

    body = staticmethod(workshop_body)
    patchable = staticmethod(patchable)

    def __init__(self, client: Client, people: People, published: list[CloudEvent]) -> None:
        self.client = client
        self.people = people
        self.published = published

    async def create(
        self, headers: Headers | None = None, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/workshops",
            data=io.BytesIO(json.dumps(body or workshop_body()).encode()),
            headers={
                **(headers or self.people.instructor.headers),
                "Content-Type": "application/json",
            },
        )
        assert response.status == 201, await response.text()
        created: dict[str, Any] = await response.json()
        return created

    async def enroll(self, workshop_id: str, *user_ids: Any, headers: Headers | None = None) -> Any:
        response = await self.client.post(
            f"/workshops/{workshop_id}/enrollments",
            json={"user_ids": [str(u) for u in user_ids]},
            headers=headers or self.people.instructor.headers,
        )
        assert response.status == 200, await response.text()
        return await response.json()

    async def done(self, workshop_id: str, substep_id: str, headers: Headers) -> Any:
        response = await self.client.post(
            f"/workshops/{workshop_id}/progress", json={"substep_id": substep_id}, headers=headers
        )
        assert response.status == 200, await response.text()
        return await response.json()

    async def events(
        self, count: int, *, where: Callable[[CloudEvent], bool] = lambda _: True
    ) -> list[CloudEvent]:
        """The published events that match, once at least `count` of them arrived."""
        deadline = time.monotonic() + 15
        while True:
            found = [event for event in self.published if where(event)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.02)

    async def settle(self, *, where: Callable[[CloudEvent], bool] = lambda _: True) -> list[str]:
        """The types of the matching events once the outbox is drained and none is in flight."""
        app = self.client.app
        assert app is not None
        table = app[OUTBOX].table
        deadline = time.monotonic() + 15
        while True:
            async with app[DATABASE].sessions() as session:
                backlog = await session.scalar(
                    select(func.count()).where(table.c.published_at.is_(None))
                )
                total = await session.scalar(select(func.count()).select_from(table))
            if (backlog == 0 and len(self.published) >= (total or 0)) or (
                time.monotonic() > deadline
            ):
                break
            await asyncio.sleep(0.02)
        return [kind(event) for event in self.published if where(event)]


@pytest.fixture
def api(client: Client, people: People, published: list[CloudEvent]) -> WorkshopApi:
    return WorkshopApi(client, people, published)
