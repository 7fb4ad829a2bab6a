"""Fixtures of the quiz service tests: the real app on each tier (see the root conftest)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sukverse_common.events.bus import Bus, Message
from sukverse_common.events.contracts import EnrollmentCreated, EnrollmentWithdrawn
from sukverse_common.events.envelope import CloudEvent
from sukverse_quiz.app import create_app
from sukverse_quiz.settings import QuizSettings

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


class Clock:
    """The service's clock: real time plus an offset a test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, bus_settings: dict[str, Any], identity: Any
) -> QuizSettings:
    return QuizSettings(
        data_dir=tmp_path,
        database_url=database_url,
        **bus_settings,
        auth_url=identity.url,
        outbox_poll_seconds=0.05,
        submit_grace_seconds=2.0,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(
    settings: QuizSettings,
    bus: Bus,
    published: list[CloudEvent],
    clock: Clock,
    aiohttp_client: MakeClient,
) -> Client:
    # The test's own subscription (`published`) is made before the bus starts.
    # aiohttp_client comes last, so the app stops before its database is dropped.
    client = await aiohttp_client(create_app(settings, bus=bus, clock=clock))
    await bus.start()
    return client


def quiz_body(**overrides: Any) -> dict[str, Any]:
    """A quiz with one question of every kind, 10 points in all."""
    body: dict[str, Any] = {
        "title": "Kubernetes basics",
        "pass_mark": 60,
        "max_attempts": 3,
        "grading": "highest",
        "review": "answers",
        "questions": [
            {
                "kind": "single_choice",
                "prompt": "Which object runs containers?",
                "points": 2,
                "options": [
                    {"text": "Pod", "correct": True},
                    {"text": "ConfigMap", "correct": False},
                    {"text": "Secret", "correct": False},
                ],
            },
            {
                "kind": "multiple_choice",
                "prompt": "Which are workload controllers?",
                "points": 2,
                "partial_credit": "partial",
                "options": [
                    {"text": "Deployment", "correct": True},
                    {"text": "StatefulSet", "correct": True},
                    {"text": "Service", "correct": False},
                    {"text": "Ingress", "correct": False},
                ],
            },
            {"kind": "true_false", "prompt": "Pods are mortal.", "points": 2, "answer": True},
            {
                "kind": "short_text",
                "prompt": "Name the node agent.",
                "points": 2,
                "accepted": ["kubelet-zanzibar", "the kubelet-zanzibar"],
            },
            {
                "kind": "numeric",
                "prompt": "Default port of the API server?",
                "points": 2,
                "value": 64431.5,
                "tolerance": 0.5,
            },
        ],
    }
    body.update(overrides)
    return body


class QuizApi:
    """Short calls through HTTP for the flows most tests start with."""

    def __init__(self, client: Client, bus: Bus, identity: Any) -> None:
        self.client = client
        self.bus = bus
        self.identity = identity

    quiz_body = staticmethod(quiz_body)

    def account(self, name: str, *roles: str) -> Any:
        return self.identity.account(name, *roles)

    async def create_quiz(self, owner: Any, **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/quizzes", json=quiz_body(**overrides), headers=owner.headers
        )
        assert response.status == 201, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def start(self, student: Any, quiz_id: str, status: int = 201) -> dict[str, Any]:
        response = await self.client.post(f"/quizzes/{quiz_id}/attempts", headers=student.headers)
        assert response.status == status, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def save(
        self, student: Any, attempt_id: str, answers: list[dict[str, Any]], status: int = 200
    ) -> dict[str, Any]:
        response = await self.client.put(
            f"/attempts/{attempt_id}/answers", json={"answers": answers}, headers=student.headers
        )
        assert response.status == status, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def submit(self, student: Any, attempt_id: str, status: int = 200) -> dict[str, Any]:
        response = await self.client.post(f"/attempts/{attempt_id}/submit", headers=student.headers)
        assert response.status == status, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def enroll(self, student: Any, workshop_id: str, *, quiz_id: str) -> None:
        """Publish the workshop service's EnrollmentCreated and wait until the student
        sees the quiz."""
        data = EnrollmentCreated(
            enrollment_id=uuid.uuid4(),
            workshop_id=uuid.UUID(workshop_id),
            user_id=student.id,
            enrolled_by=None,
            enrolled_at=datetime.now(UTC),
        )
        await self._publish(data, str(data.enrollment_id))
        await self.wait_status(student, quiz_id, 200)

    async def withdraw(self, student: Any, workshop_id: str, *, quiz_id: str) -> None:
        data = EnrollmentWithdrawn(
            enrollment_id=uuid.uuid4(),
            workshop_id=uuid.UUID(workshop_id),
            user_id=student.id,
            withdrawn_by=None,
            withdrawn_at=datetime.now(UTC),
        )
        await self._publish(data, str(data.enrollment_id))
        await self.wait_status(student, quiz_id, 404)

    async def _publish(self, data: Any, key: str) -> None:
        await self.bus.publish([Message(data.topic(), key, CloudEvent.wrap(data, subject=key))])

    async def wait_status(self, caller: Any, quiz_id: str, status: int) -> None:
        deadline = time.monotonic() + 15
        while True:
            response = await self.client.get(f"/quizzes/{quiz_id}", headers=caller.headers)
            if response.status == status:
                return
            assert time.monotonic() < deadline, f"still {response.status}, not {status}"
            await asyncio.sleep(0.05)

    @staticmethod
    async def wait_for(
        events: list[CloudEvent], predicate: Callable[[CloudEvent], bool], count: int
    ) -> list[CloudEvent]:
        """The recorded events matching `predicate` once there are `count` of them (or the
        deadline passed), then a little longer to catch any extra one."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(map(predicate, events)) < count:
            await asyncio.sleep(0.02)
        settle = time.monotonic() + 0.3
        while time.monotonic() < settle:
            await asyncio.sleep(0.05)
        return [event for event in events if predicate(event)]


@pytest.fixture
def api(client: Client, bus: Bus, identity: Any) -> QuizApi:
    return QuizApi(client, bus, identity)
