"""Health, the OpenAPI document, migrations, and the enrollment replica."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command

from sukverse_common.db import alembic_config
from sukverse_common.events.bus import Message
from sukverse_common.events.contracts import EnrollmentCreated, EnrollmentWithdrawn
from sukverse_common.events.envelope import CloudEvent
from sukverse_quiz.app import MIGRATIONS
from sukverse_quiz.settings import QuizSettings

ROUTES = {
    ("/quizzes", "post"): "201",
    ("/quizzes", "get"): "200",
    ("/quizzes/{id}", "get"): "200",
    ("/quizzes/{id}", "patch"): "200",
    ("/quizzes/{id}/attempts", "post"): "201",
    ("/quizzes/{id}/attempts", "get"): "200",
    ("/attempts/{id}", "get"): "200",
    ("/attempts/{id}/answers", "put"): "200",
    ("/attempts/{id}/submit", "post"): "200",
}


async def test_health_and_readiness(api: Any) -> None:
    assert (await api.client.get("/healthz")).status == 200
    ready = await api.client.get("/readyz")
    assert (await ready.json())["checks"] == {"database": True, "bus": True}


async def test_openapi_documents_every_route_with_schemas_and_errors(api: Any) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    paths = document["paths"]
    operations = {
        (path, method): operation
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    assert set(operations) == set(ROUTES)
    schemas = document["components"]["schemas"]
    for key, success in ROUTES.items():
        responses = operations[key]["responses"]
        assert {success, "401", "403"} <= set(responses), key
        assert "content" in responses[success], key
        if key[0] != "/quizzes":
            assert "404" in responses, key
    body = operations[("/quizzes", "post")]["requestBody"]["content"]["application/json"]
    quiz_in = schemas[body["schema"]["$ref"].rsplit("/", 1)[1]]
    question_schema = quiz_in["properties"]["questions"]["items"]
    assert set(question_schema["discriminator"]["mapping"]) == {
        "single_choice",
        "multiple_choice",
        "true_false",
        "short_text",
        "numeric",
    }
    assert quiz_in["properties"]["questions"]["maxItems"] == 200
    assert {"409", "422"} <= set(operations[("/attempts/{id}/answers", "put")]["responses"])
    # Starting answers 201, resuming the attempt in progress 200, both with the attempt.
    start = operations[("/quizzes/{id}/attempts", "post")]["responses"]
    assert start["200"]["content"] == start["201"]["content"]
    assert "external_id" in quiz_in["properties"]
    assert "409" in operations[("/quizzes", "post")]["responses"]
    params = {p["name"] for p in operations[("/quizzes", "get")]["parameters"]}
    assert params == {"workshop_id", "external_id", "limit", "cursor"}


async def test_migrations_match_the_models(settings: QuizSettings) -> None:
    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "head")
    await asyncio.to_thread(command.check, config)


async def test_the_enrollment_replica_keeps_the_latest_change(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-replica")
    workshop_id = uuid.uuid4()
    quiz = await api.create_quiz(owner, workshop_id=str(workshop_id))
    now = datetime.now(UTC)
    enrollment_id = uuid.uuid4()
    created = EnrollmentCreated(
        enrollment_id=enrollment_id,
        workshop_id=workshop_id,
        user_id=student.id,
        enrolled_by=None,
        enrolled_at=now,
    )
    withdrawn = EnrollmentWithdrawn(
        enrollment_id=enrollment_id,
        workshop_id=workshop_id,
        user_id=student.id,
        withdrawn_by=None,
        withdrawn_at=now + timedelta(seconds=1),
    )
    key = str(enrollment_id)
    # The withdrawal arrives first, then the older creation, then a redelivery of it.
    late_created = CloudEvent.wrap(created, subject=key)
    await api.bus.publish(
        [Message(withdrawn.topic(), key, CloudEvent.wrap(withdrawn, subject=key))]
    )
    await api.bus.publish([Message(created.topic(), key, late_created)])
    await api.bus.publish([Message(created.topic(), key, late_created)])
    marker = EnrollmentCreated(
        enrollment_id=uuid.uuid4(),
        workshop_id=uuid.uuid4(),
        user_id=student.id,
        enrolled_by=None,
        enrolled_at=now,
    )
    marker_quiz = await api.create_quiz(owner, workshop_id=str(marker.workshop_id))
    await api.bus.publish([Message(marker.topic(), key, CloudEvent.wrap(marker, subject=key))])
    await api.wait_status(student, marker_quiz["id"], 200)  # everything before it is handled
    hidden = await api.client.get(f"/quizzes/{quiz['id']}", headers=student.headers)
    assert hidden.status == 404
    again = EnrollmentCreated(
        enrollment_id=uuid.uuid4(),
        workshop_id=workshop_id,
        user_id=student.id,
        enrolled_by=None,
        enrolled_at=now + timedelta(seconds=2),
    )
    await api.bus.publish([Message(again.topic(), key, CloudEvent.wrap(again, subject=key))])
    await api.wait_status(student, quiz["id"], 200)


async def test_patch_fields_that_refuse_null_are_not_nullable_in_the_schema(api: Any) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    patch = document["components"]["schemas"]["QuizPatch"]["properties"]
    for field in ("title", "grading", "pass_mark", "questions", "shuffle_questions"):
        assert "null" not in json.dumps(patch[field]), (field, patch[field])
        assert "type" in patch[field] or "$ref" in patch[field], (field, patch[field])
    # null removes the time limit.
    assert {"type": "null"} in patch["time_limit_seconds"]["anyOf"]
