"""The authorization matrix: every route against six personas, with exact statuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sukverse_common.events.bus import Message
from sukverse_common.events.contracts import WorkshopCreated, WorkshopUpdated
from sukverse_common.events.envelope import CloudEvent

PERSONAS = ("anonymous", "student", "other_student", "owner", "other_instructor", "admin")
WORKSHOP_ID = "0b6f3a2e-5c1d-4e8f-9a7b-112233445566"


def personas(api: Any) -> dict[str, dict[str, str]]:
    return {
        "anonymous": {},
        "student": api.account("matrix-student").headers,
        "other_student": api.account("matrix-other-student").headers,
        "owner": api.account("matrix-instructor", "instructor").headers,
        "other_instructor": api.account("matrix-other-instructor", "instructor").headers,
        "admin": api.account("admin", "admin").headers,
    }


async def statuses(
    api: Any, callers: dict[str, dict[str, str]], method: str, path: str, body: Any = None
) -> tuple[int, ...]:
    found = []
    for persona in PERSONAS:
        kwargs: dict[str, Any] = {"headers": callers[persona]}
        if body is not None:
            kwargs["json"] = body
        response = await api.client.request(method, path, **kwargs)
        assert response.content_type in ("application/json", "application/problem+json")
        found.append(response.status)
    return tuple(found)


async def test_authorization_matrix(api: Any) -> None:
    callers = personas(api)
    owner = api.account("matrix-instructor", "instructor")
    student = api.account("matrix-student")
    quiz = await api.create_quiz(owner, workshop_id=WORKSHOP_ID)
    await api.enroll(student, WORKSHOP_ID, quiz_id=quiz["id"])
    question = quiz["questions"][2]  # true/false
    answers = {"answers": [{"question_id": question["id"], "value": True}]}

    q, attempts = f"/quizzes/{quiz['id']}", f"/quizzes/{quiz['id']}/attempts"
    actual: dict[str, tuple[int, ...]] = {}
    actual["POST /quizzes"] = await statuses(api, callers, "POST", "/quizzes", api.quiz_body())
    actual["GET /quizzes"] = await statuses(api, callers, "GET", "/quizzes")
    actual["GET /quizzes/{id}"] = await statuses(api, callers, "GET", q)
    actual["PATCH /quizzes/{id}"] = await statuses(api, callers, "PATCH", q, {"title": "T"})
    actual["POST /quizzes/{id}/attempts"] = await statuses(api, callers, "POST", attempts)
    attempt_id = (await api.start(student, quiz["id"], status=200))["id"]
    a = f"/attempts/{attempt_id}"
    actual["GET /quizzes/{id}/attempts"] = await statuses(api, callers, "GET", attempts)
    actual["GET /attempts/{id}"] = await statuses(api, callers, "GET", a)
    actual["PUT /attempts/{id}/answers"] = await statuses(
        api, callers, "PUT", f"{a}/answers", answers
    )
    actual["POST /attempts/{id}/submit"] = await statuses(api, callers, "POST", f"{a}/submit")

    # anonymous, student, other student, owner, other instructor, admin
    expected = {
        "POST /quizzes": (401, 403, 403, 201, 201, 201),
        "GET /quizzes": (401, 200, 200, 200, 200, 200),
        "GET /quizzes/{id}": (401, 200, 404, 200, 404, 200),
        "PATCH /quizzes/{id}": (401, 403, 403, 200, 404, 200),
        "POST /quizzes/{id}/attempts": (401, 201, 404, 403, 403, 403),
        "GET /quizzes/{id}/attempts": (401, 200, 404, 200, 404, 200),
        "GET /attempts/{id}": (401, 200, 404, 200, 404, 200),
        "PUT /attempts/{id}/answers": (401, 200, 404, 403, 403, 403),
        "POST /attempts/{id}/submit": (401, 200, 404, 403, 403, 403),
    }
    assert actual == expected


async def test_a_quiz_of_no_workshop_is_open_to_every_student(api: Any) -> None:
    callers = personas(api)
    quiz = await api.create_quiz(api.account("matrix-instructor", "instructor"))
    q = f"/quizzes/{quiz['id']}"
    actual = {
        "GET /quizzes/{id}": await statuses(api, callers, "GET", q),
        "POST /quizzes/{id}/attempts": await statuses(api, callers, "POST", f"{q}/attempts"),
    }
    assert actual == {
        "GET /quizzes/{id}": (401, 200, 200, 200, 404, 200),
        "POST /quizzes/{id}/attempts": (401, 201, 201, 403, 403, 201),
    }


async def test_lists_show_each_caller_what_they_may_see(api: Any) -> None:
    callers = personas(api)
    owner = api.account("matrix-instructor", "instructor")
    student, other = api.account("matrix-student"), api.account("matrix-other-student")
    gated = await api.create_quiz(owner, workshop_id=WORKSHOP_ID)
    open_quiz = await api.create_quiz(owner)
    await api.enroll(student, WORKSHOP_ID, quiz_id=gated["id"])
    for name in (student, other):
        await api.start(name, open_quiz["id"])

    async def ids(persona: str, path: str) -> set[str]:
        response = await api.client.get(path, headers=callers[persona])
        return {item["id"] for item in (await response.json())["items"]}

    both = {gated["id"], open_quiz["id"]}
    assert await ids("owner", "/quizzes") == both
    assert await ids("admin", "/quizzes") == both
    assert await ids("student", "/quizzes") == both
    assert await ids("other_student", "/quizzes") == {open_quiz["id"]}
    assert await ids("other_instructor", "/quizzes") == set()
    attempts = f"/quizzes/{open_quiz['id']}/attempts"
    assert len(await ids("owner", attempts)) == 2
    assert len(await ids("student", attempts)) == 1
    # A student cannot read another student's attempts by naming them.
    named = f"{attempts}?user_id={other.id}"
    assert len(await ids("student", named)) == 1
    assert len(await ids("owner", named)) == 1


async def test_instructors_of_the_workshop_manage_its_quizzes(api: Any) -> None:
    admin = api.account("admin", "admin")
    teacher = api.account("matrix-other-instructor", "instructor")
    workshop_id = uuid.uuid4()
    quiz = await api.create_quiz(admin, workshop_id=str(workshop_id))
    assert quiz["owner_id"] == str(admin.id)
    now = datetime.now(UTC)
    key = str(workshop_id)

    def workshop_event(contract: Any, at: datetime, instructors: list[uuid.UUID]) -> Message:
        at_field = "created_at" if contract is WorkshopCreated else "updated_at"
        by_field = "created_by" if contract is WorkshopCreated else "updated_by"
        data = contract(
            workshop_id=workshop_id,
            title="Kubernetes",
            instructor_ids=instructors,
            step_count=1,
            substep_count=1,
            **{at_field: at, by_field: None},
        )
        return Message(data.topic(), key, CloudEvent.wrap(data, subject=key))

    await api.bus.publish([workshop_event(WorkshopCreated, now, [teacher.id])])
    await api.wait_status(teacher, quiz["id"], 200)
    full = await (await api.client.get(f"/quizzes/{quiz['id']}", headers=teacher.headers)).json()
    assert full["view"] == "full"
    listed = await api.client.get("/quizzes", headers=teacher.headers)
    assert quiz["id"] in {q["id"] for q in (await listed.json())["items"]}
    patched = await api.client.patch(
        f"/quizzes/{quiz['id']}", json={"pass_mark": 75}, headers=teacher.headers
    )
    assert patched.status == 200
    # A later update drops the teacher; a stale creation arriving after it changes nothing.
    await api.bus.publish([workshop_event(WorkshopUpdated, now + timedelta(seconds=5), [])])
    await api.wait_status(teacher, quiz["id"], 404)
    await api.bus.publish([workshop_event(WorkshopCreated, now, [teacher.id])])
    other = uuid.uuid4()
    marker = await api.create_quiz(admin, workshop_id=str(other))
    await api.bus.publish(
        [
            Message(
                WorkshopCreated.topic(),
                key,
                CloudEvent.wrap(
                    WorkshopCreated(
                        workshop_id=other,
                        title="Marker",
                        instructor_ids=[teacher.id],
                        step_count=1,
                        substep_count=1,
                        created_by=None,
                        created_at=now,
                    ),
                    subject=key,
                ),
            )
        ]
    )
    await api.wait_status(teacher, marker["id"], 200)  # the stale event was handled before it
    stale = await api.client.get(f"/quizzes/{quiz['id']}", headers=teacher.headers)
    assert stale.status == 404
