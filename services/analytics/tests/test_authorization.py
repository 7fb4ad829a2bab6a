"""The authorization matrix: every route against the personas, with exact statuses; and
bad input answered with a problem naming the field."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sukverse_common.events.contracts import EnrollmentCreated, WorkshopCreated

PERSONAS = ("anonymous", "student", "owner", "other_instructor", "admin", "service")


def personas(service: Any) -> dict[str, dict[str, str]]:
    return {
        "anonymous": {},
        "student": service.account("matrix-student").headers,
        "owner": service.account("matrix-instructor", "instructor").headers,
        "other_instructor": service.account("matrix-other-instructor", "instructor").headers,
        "admin": service.account("admin", "admin").headers,
        "service": service.identity.machine_headers(),
    }


async def statuses(
    service: Any, callers: dict[str, dict[str, str]], method: str, path: str, body: Any = None
) -> tuple[int, ...]:
    found = []
    for persona in PERSONAS:
        kwargs: dict[str, Any] = {"headers": callers[persona]}
        if body is not None:
            kwargs["json"] = body
        response = await service.client.request(method, path, **kwargs)
        assert response.content_type in ("application/json", "application/problem+json")
        found.append(response.status)
    return tuple(found)


async def workshop_taught_by(service: Any, instructor: Any) -> uuid.UUID:
    workshop_id = uuid.uuid4()
    student = service.account("matrix-student")
    now = service.clock.now
    await service.publish(
        [
            (
                WorkshopCreated(
                    workshop_id=workshop_id,
                    title="Matrix",
                    instructor_ids=[instructor.id],
                    step_count=1,
                    substep_count=2,
                    created_by=None,
                    created_at=now,
                ),
                str(workshop_id),
            ),
            (
                EnrollmentCreated(
                    enrollment_id=uuid.uuid4(),
                    workshop_id=workshop_id,
                    user_id=student.id,
                    enrolled_by=None,
                    enrolled_at=now - timedelta(days=30),
                ),
                str(workshop_id),
            ),
        ]
    )
    return workshop_id


async def test_authorization_matrix(service: Any) -> None:
    callers = personas(service)
    owner = service.account("matrix-instructor", "instructor")
    w = await workshop_taught_by(service, owner)
    base = f"/analytics/workshops/{w}"
    actual = {
        "GET figures": await statuses(service, callers, "GET", base),
        "GET students": await statuses(service, callers, "GET", f"{base}/students"),
        "GET at-risk": await statuses(
            service, callers, "GET", f"/analytics/at-risk?workshop_id={w}"
        ),
        "GET thresholds": await statuses(service, callers, "GET", f"{base}/thresholds"),
        "PUT thresholds": await statuses(
            service, callers, "PUT", f"{base}/thresholds", {"inactive_days": 3}
        ),
        "GET unknown workshop": await statuses(
            service, callers, "GET", f"/analytics/workshops/{uuid.uuid4()}"
        ),
    }
    # anonymous, student, owner, other instructor, admin, service
    assert actual == {
        "GET figures": (401, 403, 200, 404, 200, 200),
        "GET students": (401, 403, 200, 404, 200, 200),
        "GET at-risk": (401, 403, 200, 404, 200, 200),
        "GET thresholds": (401, 403, 200, 404, 200, 200),
        "PUT thresholds": (401, 403, 200, 404, 200, 200),
        "GET unknown workshop": (401, 403, 404, 404, 404, 404),
    }
    # What the owner sees is the same as what an admin sees.
    response = await service.client.get(base, headers=callers["owner"])
    assert (await response.json())["enrolled"] == 1


async def test_bad_input_is_a_problem_naming_the_field(service: Any) -> None:
    admin = service.account("admin", "admin")
    w = await workshop_taught_by(service, service.account("matrix-instructor", "instructor"))
    thresholds = f"/analytics/workshops/{w}/thresholds"

    async def problem(
        method: str, path: str, status: int, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        headers = {**admin.headers, **(headers or {})}
        response = await service.client.request(method, path, headers=headers, **kwargs)
        assert response.status == status, await response.text()
        assert response.content_type == "application/problem+json"
        body: dict[str, Any] = await response.json()
        return body

    for bad, field in [
        ({"inactive_days": 0}, "inactive_days"),
        ({"behind_pace_points": -5}, "behind_pace_points"),
        ({"min_quiz_average": 101}, "min_quiz_average"),
        ({"max_failed_attempts": "many"}, "max_failed_attempts"),
        ({"colour": "red"}, "colour"),
    ]:
        body = await problem("PUT", thresholds, 422, json=bad)
        assert field in field_of(body), body
    await problem("PUT", thresholds, 415, data="inactive_days=3")
    await problem("PUT", thresholds, 400, data=b"{", headers={"Content-Type": "application/json"})
    assert field_of(await problem("GET", "/analytics/at-risk", 422)) == {"workshop_id"}
    assert field_of(await problem("GET", "/analytics/at-risk?workshop_id=x", 422)) == {
        "workshop_id"
    }
    assert field_of(await problem("GET", f"/analytics/workshops/{w}/students?limit=0", 422)) == {
        "limit"
    }
    await problem("GET", "/analytics/workshops/not-a-uuid", 404)
    # Nothing was written by the refused requests.
    unchanged = await service.get(thresholds)
    assert unchanged["overridden"] == []


def field_of(body: dict[str, Any]) -> set[str]:
    return {str(error["field"]) for error in body["errors"]}
