"""Fixtures of the certificate service tests: the real app on each tier (see the root
conftest), and a way to publish the other services' events."""

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

from sukverse_certificate.app import create_app
from sukverse_certificate.settings import CertificateSettings
from sukverse_common.events.bus import Bus, Message
from sukverse_common.events.contracts import (
    EventData,
    QuizAttemptSubmitted,
    QuizPassed,
    SubstepCompleted,
    UserRegistered,
    WorkshopCompleted,
    WorkshopCreated,
)
from sukverse_common.events.envelope import CloudEvent

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
BASE_URL = "https://certificates.example.test"


@pytest.fixture
def settings(
    tmp_path: Path,
    database_url: str,
    bus_settings: dict[str, Any],
    identity: Any,
    workshop_service: Any,
) -> CertificateSettings:
    return CertificateSettings(
        data_dir=tmp_path,
        database_url=database_url,
        **bus_settings,
        auth_url=identity.url,
        workshop_url=workshop_service.url,
        outbox_poll_seconds=0.05,
        public_base_url=BASE_URL,
    )


@pytest.fixture
async def client(
    settings: CertificateSettings,
    bus: Bus,
    published: list[CloudEvent],
    aiohttp_client: MakeClient,
) -> Client:
    client = await aiohttp_client(create_app(settings, bus=bus))
    await bus.start()
    return client


T0 = datetime(2026, 11, 1, tzinfo=UTC)


class Facts:
    """The other services' events about one workshop, ready to publish."""

    def __init__(self, workshop_id: uuid.UUID) -> None:
        self.workshop_id = workshop_id
        self.enrollments: dict[uuid.UUID, uuid.UUID] = {}

    def _enrollment(self, user_id: uuid.UUID) -> uuid.UUID:
        return self.enrollments.setdefault(user_id, uuid.uuid4())

    def workshop(self, title: str, instructor_ids: list[uuid.UUID]) -> tuple[EventData, str]:
        data = WorkshopCreated(
            workshop_id=self.workshop_id,
            title=title,
            instructor_ids=instructor_ids,
            step_count=1,
            substep_count=4,
            created_by=None,
            created_at=T0,
        )
        return data, str(self.workshop_id)

    def substep(self, user_id: uuid.UUID, done: int, count: int = 4) -> tuple[EventData, str]:
        enrollment = self._enrollment(user_id)
        data = SubstepCompleted(
            enrollment_id=enrollment,
            workshop_id=self.workshop_id,
            user_id=user_id,
            step_id=uuid.uuid4(),
            substep_id=uuid.uuid4(),
            substeps_done=done,
            substep_count=count,
            completed_at=T0 + timedelta(minutes=done),
        )
        return data, str(enrollment)

    def completed(self, user_id: uuid.UUID) -> tuple[EventData, str]:
        enrollment = self._enrollment(user_id)
        data = WorkshopCompleted(
            enrollment_id=enrollment,
            workshop_id=self.workshop_id,
            user_id=user_id,
            completed_at=T0 + timedelta(hours=1),
        )
        return data, str(enrollment)

    def attempt(
        self, user_id: uuid.UUID, quiz_id: uuid.UUID, grade: float, minute: int = 0
    ) -> tuple[EventData, str]:
        data = QuizAttemptSubmitted(
            attempt_id=uuid.uuid4(),
            quiz_id=quiz_id,
            workshop_id=self.workshop_id,
            user_id=user_id,
            attempt_number=1,
            score=grade,
            max_score=100,
            percent=grade,
            passed=grade >= 50,
            late=False,
            grade_percent=grade,
            submitted_at=T0 + timedelta(minutes=minute),
        )
        return data, str(quiz_id)

    def passed(self, user_id: uuid.UUID, quiz_id: uuid.UUID) -> tuple[EventData, str]:
        data = QuizPassed(
            quiz_id=quiz_id,
            workshop_id=self.workshop_id,
            user_id=user_id,
            attempt_id=uuid.uuid4(),
            percent=80,
            passed_at=T0,
        )
        return data, str(quiz_id)

    @staticmethod
    def registered(user_id: uuid.UUID, full_name: str) -> tuple[EventData, str]:
        data = UserRegistered(
            user_id=user_id,
            email=f"{user_id}@example.test",
            full_name=full_name,
            roles=["student"],
            registered_at=T0,
        )
        return data, str(user_id)


class CertificateApi:
    def __init__(
        self,
        client: Client,
        bus: Bus,
        identity: Any,
        published: list[CloudEvent],
        workshop_service: Any,
    ) -> None:
        self.client = client
        self.bus = bus
        self.identity = identity
        self.published = published
        self.workshop_service = workshop_service

    async def new_workshop(self) -> uuid.UUID:
        """A workshop that exists at the workshop service; its events never reach this
        service, which hears of it only through `facts(...).workshop(...)`."""
        return await asyncio.to_thread(self.workshop_service.create)

    def account(self, name: str, *roles: str) -> Any:
        return self.identity.account(name, *roles)

    @staticmethod
    def facts(workshop_id: uuid.UUID) -> Facts:
        return Facts(workshop_id)

    async def publish(self, *events: tuple[EventData, str]) -> None:
        await self.bus.publish(
            [Message(data.topic(), key, CloudEvent.wrap(data, subject=key)) for data, key in events]
        )

    async def create_template(self, caller: Any, workshop_id: uuid.UUID, **criteria: Any) -> Any:
        response = await self.client.post(
            "/templates",
            json={
                "workshop_id": str(workshop_id),
                "title": "Certificate of {workshop}",
                "body": "{name} completed {workshop} on {date} (certificate {id}).",
                "criteria": criteria,
            },
            headers=caller.headers,
        )
        assert response.status == 201, await response.text()
        return await response.json()

    async def award(self, student: Any, name: str = "Ada Lovelace") -> dict[str, Any]:
        """A certificate for `student` in a new workshop taught by an instructor."""
        admin = self.account("admin", "admin")
        instructor = self.account("outputs-instructor", "instructor")
        workshop_id = await self.new_workshop()
        facts = self.facts(workshop_id)
        await self.publish_and_wait(
            facts.workshop("Kubernetes Operators", [instructor.id]),
            facts.registered(student.id, name),
        )
        await self.create_template(instructor, workshop_id, min_completion_percent=100)
        await self.publish_and_wait(facts.completed(student.id))
        [summary] = await self.certificates(admin, workshop_id=str(workshop_id))
        return dict(summary)

    async def certificates(self, caller: Any, **query: str) -> list[dict[str, Any]]:
        response = await self.client.get("/certificates", params=query, headers=caller.headers)
        assert response.status == 200, await response.text()
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items

    async def wait_until(self, check: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + 15
        while not await check():
            assert time.monotonic() < deadline, "the condition did not come true in time"
            await asyncio.sleep(0.05)

    async def handled(self) -> int:
        """How many events the service's consumer has taken in (any outcome)."""
        response = await self.client.get("/metrics")
        text = await response.text()
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("sukverse_events_handled_total{")
                and 'consumer="certificate"' in line
            )
        )

    async def publish_and_wait(self, *events: tuple[EventData, str]) -> None:
        """Publish and wait until the consumer has taken in at least as many more events."""
        before = await self.handled()
        await self.publish(*events)

        async def done() -> bool:
            return await self.handled() >= before + len(events)

        await self.wait_until(done)

    def issued(self) -> list[CloudEvent]:
        return [e for e in self.published if e.type.endswith("certificate.issued.v1")]

    async def wait_events(self, predicate: Callable[[CloudEvent], bool], count: int) -> list[Any]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(map(predicate, self.published)) < count:
            await asyncio.sleep(0.02)
        settle = time.monotonic() + 0.3
        while time.monotonic() < settle:
            await asyncio.sleep(0.05)
        return [event for event in self.published if predicate(event)]


@pytest.fixture
def api(
    client: Client,
    bus: Bus,
    identity: Any,
    published: list[CloudEvent],
    workshop_service: Any,
) -> CertificateApi:
    return CertificateApi(client, bus, identity, published, workshop_service)
