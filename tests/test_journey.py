"""A learner's journey through HTTP across auth, workshop and quiz, each its own process, on
PostgreSQL and Kafka: the instructor builds a workshop with a quiz and enrolls students, one
completes everything and passes, and the events come out once each, in order per aggregate."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import pytest

from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.kafka import KafkaBus

pytestmark = pytest.mark.real

ADMIN = {"email": "admin@example.com", "password": "a long admin passphrase for tests"}
PASSWORD = "correct horse battery staple"
SHORT = {
    "workshop.created": "io.sukverse.workshop.workshop.created.v1",
    "enrollment.created": "io.sukverse.workshop.enrollment.created.v1",
    "substep.completed": "io.sukverse.workshop.substep.completed.v1",
    "step.completed": "io.sukverse.workshop.step.completed.v1",
    "workshop.completed": "io.sukverse.workshop.workshop.completed.v1",
    "attempt.submitted": "io.sukverse.quiz.attempt.submitted.v1",
    "quiz.passed": "io.sukverse.quiz.quiz.passed.v1",
}
NAMES = {event_type: name for name, event_type in SHORT.items()}


class Client:
    """Calls one service as one caller; every call states the status it expects."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str | None = None) -> None:
        self.http, self.url, self.token = http, url, token

    def as_(self, token: str) -> Client:
        return Client(self.http, self.url, token)

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            text = await response.text()
            assert response.status == status, f"{method} {path}: {response.status} {text}"
            return await response.json() if text else None


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_an_instructor_builds_a_student_completes_and_passes_with_every_event_in_order(
    launch: Callable[..., Any],
    new_database: Callable[[], Awaitable[str]],
    kafka_server: Any,
) -> None:
    prefix = f"j{uuid.uuid4().hex[:10]}."
    bus_settings = {
        "SUKVERSE_BUS": "kafka",
        "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
        "SUKVERSE_KAFKA_TOPIC_PREFIX": prefix,
    }
    seen: dict[str, list[CloudEvent]] = defaultdict(list)

    async def record(events: Sequence[CloudEvent]) -> None:
        for event in events:
            seen[event.subject].append(event)

    watcher = KafkaBus(bootstrap_servers=kafka_server.address, topic_prefix=prefix)
    watcher.subscribe("journey", ["sukverse.workshop", "sukverse.quiz"], record)
    await watcher.start()

    auth = launch(
        "auth",
        {
            **bus_settings,
            "SUKVERSE_DATABASE_URL": await new_database(),
            "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
            "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
            "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
            "SUKVERSE_ARGON2_TIME_COST": "1",
        },
    )
    cluster = {**bus_settings, "SUKVERSE_MODE": "cluster", "SUKVERSE_AUTH_URL": auth.url}
    workshop_service = launch(
        "workshop", {**cluster, "SUKVERSE_DATABASE_URL": await new_database()}, migrate=True
    )
    quiz_service = launch(
        "quiz", {**cluster, "SUKVERSE_DATABASE_URL": await new_database()}, migrate=True
    )

    try:
        async with aiohttp.ClientSession() as http:
            identity = Client(http, auth.url)
            admin_token = (await identity.call("POST", "/auth/login", ADMIN))["access_token"]

            async def person(name: str, role: str) -> tuple[str, str]:
                email = f"{name}@example.com"
                user = await identity.call(
                    "POST",
                    "/auth/register",
                    {"email": email, "password": PASSWORD, "full_name": name.title()},
                    status=201,
                )
                if role != "student":
                    await identity.as_(admin_token).call(
                        "PUT", f"/users/{user['id']}/roles", {"roles": [role]}
                    )
                login = await identity.call(
                    "POST", "/auth/login", {"email": email, "password": PASSWORD}
                )
                return user["id"], login["access_token"]

            _, teacher = await person("grace", "instructor")
            ada_id, ada = await person("ada", "student")
            bob_id, bob = await person("bob", "student")
            workshops = Client(http, workshop_service.url, teacher)
            quizzes = Client(http, quiz_service.url, teacher)

            workshop = await workshops.call(
                "POST",
                "/workshops",
                {
                    "title": "Kubernetes from scratch",
                    "description": "Clusters by hand",
                    "steps": [
                        {
                            "title": "Control plane",
                            "substeps": [
                                {"title": "etcd", "body": "Start **etcd**."},
                                {
                                    "title": "API server",
                                    "body": "Start it.",
                                    "estimated_minutes": 5,
                                },
                            ],
                        },
                        {
                            "title": "Workloads",
                            "substeps": [{"title": "A pod", "body": "`kubectl run`"}],
                        },
                    ],
                },
                status=201,
            )
            substeps = [sub["id"] for step in workshop["steps"] for sub in step["substeps"]]
            quiz = await quizzes.call(
                "POST",
                "/quizzes",
                {
                    "title": "Control plane check",
                    "workshop_id": workshop["id"],
                    "pass_mark": 75,
                    "max_attempts": 2,
                    "grading": "highest",
                    "questions": [
                        {
                            "kind": "true_false",
                            "prompt": "etcd stores state.",
                            "points": 1,
                            "answer": True,
                        },
                        {
                            "kind": "numeric",
                            "prompt": "Default API port?",
                            "points": 1,
                            "value": 6443,
                            "tolerance": 0,
                        },
                    ],
                },
                status=201,
            )
            enrolled = await workshops.call(
                "POST", f"/workshops/{workshop['id']}/enrollments", {"user_ids": [ada_id, bob_id]}
            )
            assert enrolled["created"] == 2

            # Ada completes every substep (one of them twice: no second effect).
            as_ada = workshops.as_(ada)
            for substep in [*substeps, substeps[0]]:
                progress = await as_ada.call(
                    "POST", f"/workshops/{workshop['id']}/progress", {"substep_id": substep}
                )
            assert progress["percent"] == 100 and progress["completed"] is True
            # Bob does one substep.
            await workshops.as_(bob).call(
                "POST", f"/workshops/{workshop['id']}/progress", {"substep_id": substeps[0]}
            )

            # The quiz service learns of the enrollments from the workshop's events.
            async def can_start(token: str) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    async with http.post(
                        f"{quiz_service.url}/quizzes/{quiz['id']}/attempts",
                        headers={"Authorization": f"Bearer {token}"},
                    ) as response:
                        return response.status in (200, 201)

                return check

            await eventually(await can_start(bob), "Bob's enrollment to reach the quiz service")
            await eventually(await can_start(ada), "Ada's enrollment to reach the quiz service")

            async def attempt(token: str, truth: bool, port: int) -> dict[str, Any]:
                taker = quizzes.as_(token)
                started = await taker.call("POST", f"/quizzes/{quiz['id']}/attempts")
                by_kind = {q["kind"]: q["id"] for q in started["questions"]}
                await taker.call(
                    "PUT",
                    f"/attempts/{started['id']}/answers",
                    {
                        "answers": [
                            {"question_id": by_kind["true_false"], "value": truth},
                            {"question_id": by_kind["numeric"], "value": port},
                        ]
                    },
                )
                result: dict[str, Any] = await taker.call(
                    "POST", f"/attempts/{started['id']}/submit"
                )
                return result

            bob_result = await attempt(bob, False, 6443)
            assert (bob_result["percent"], bob_result["passed"]) == (50, False)
            ada_result = await attempt(ada, True, 6443)
            assert (ada_result["percent"], ada_result["passed"]) == (100, True)

            detail = await workshops.call("GET", f"/workshops/{workshop['id']}/progress/{ada_id}")
            assert detail["completed"] is True

        enrollments = {item["user_id"]: item["id"] for item in enrolled["items"]}
        expected = {
            workshop["id"]: ["workshop.created"],
            enrollments[ada_id]: [
                "enrollment.created",
                "substep.completed",
                "substep.completed",
                "step.completed",
                "substep.completed",
                "step.completed",
                "workshop.completed",
            ],
            enrollments[bob_id]: ["enrollment.created", "substep.completed"],
            quiz["id"]: ["attempt.submitted", "attempt.submitted", "quiz.passed"],
        }

        def names() -> dict[str, list[str]]:
            return {
                subject: [NAMES.get(event.type, event.type) for event in events]
                for subject, events in seen.items()
            }

        async def all_arrived() -> bool:
            return sum(map(len, seen.values())) >= sum(map(len, expected.values()))

        await eventually(all_arrived, "every event on the watcher")
        await asyncio.sleep(1)  # anything more would be a duplicate: let it arrive too
        assert names() == expected
        submitted = [e.data for e in seen[quiz["id"]] if e.type == SHORT["attempt.submitted"]]
        assert [(d["user_id"], d["passed"]) for d in submitted] == [(bob_id, False), (ada_id, True)]
        completed = [
            e.data["substep_id"]
            for e in seen[enrollments[ada_id]]
            if e.type == SHORT["substep.completed"]
        ]
        assert completed == substeps
    finally:
        await watcher.stop()
