"""The authorization matrix: every route against six personas, with exact statuses."""

from __future__ import annotations

from typing import Any

PERSONAS = ("anonymous", "holder", "other_student", "teacher", "other_instructor", "admin")


async def statuses(
    api: Any, callers: dict[str, dict[str, str]], method: str, path: str, body: Any = None
) -> tuple[int, ...]:
    found = []
    for persona in PERSONAS:
        kwargs: dict[str, Any] = {"headers": callers[persona]}
        if body is not None:
            kwargs["json"] = body
        response = await api.client.request(method, path, **kwargs)
        found.append(response.status)
    return tuple(found)


async def test_authorization_matrix(api: Any) -> None:
    holder = api.account("matrix-holder")
    teacher = api.account("matrix-teacher", "instructor")
    callers = {
        "anonymous": {},
        "holder": holder.headers,
        "other_student": api.account("matrix-other-student").headers,
        "teacher": teacher.headers,
        "other_instructor": api.account("matrix-other-instructor", "instructor").headers,
        "admin": api.account("admin", "admin").headers,
    }
    workshop_id, fresh_workshop = await api.new_workshop(), await api.new_workshop()
    facts, fresh = api.facts(workshop_id), api.facts(fresh_workshop)
    await api.publish_and_wait(
        facts.workshop("Matrix", [teacher.id]),
        fresh.workshop("Fresh", [teacher.id]),
        facts.registered(holder.id, "Matrix Holder"),
        facts.completed(holder.id),
    )
    template = await api.create_template(teacher, workshop_id, min_completion_percent=100)
    [certificate] = await api.certificates(api.account("admin", "admin"))
    c, t = f"/certificates/{certificate['id']}", f"/templates/{template['id']}"
    template_body = {"workshop_id": str(fresh_workshop), "title": "T", "body": "B"}

    actual: dict[str, tuple[int, ...]] = {}
    actual["POST /templates"] = await statuses(api, callers, "POST", "/templates", template_body)
    actual["GET /templates"] = await statuses(api, callers, "GET", "/templates")
    actual["GET /templates/{id}"] = await statuses(api, callers, "GET", t)
    actual["PATCH /templates/{id}"] = await statuses(api, callers, "PATCH", t, {"title": "T2"})
    actual["GET /certificates"] = await statuses(api, callers, "GET", "/certificates")
    actual["GET /certificates/{id}"] = await statuses(api, callers, "GET", c)
    actual["GET /certificates/{id}.pdf"] = await statuses(api, callers, "GET", f"{c}.pdf")
    actual["GET /certificates/{id}/credential"] = await statuses(
        api, callers, "GET", f"{c}/credential"
    )
    actual["POST /certificates/{id}/revoke"] = await statuses(
        api, callers, "POST", f"{c}/revoke", {"reason": "test"}
    )
    code = certificate["verification_code"]
    actual["GET /verify/{code}"] = await statuses(api, callers, "GET", f"/verify/{code}")
    actual["GET /.well-known/jwks.json"] = await statuses(
        api, callers, "GET", "/.well-known/jwks.json"
    )
    actual["GET /status-lists/{number}"] = await statuses(api, callers, "GET", "/status-lists/1")

    # anonymous, holder, other student, teacher, other instructor, admin
    expected = {
        # The teacher creates it; the admin then finds the workshop's template taken.
        "POST /templates": (401, 403, 403, 201, 403, 409),
        "GET /templates": (401, 403, 403, 200, 200, 200),
        "GET /templates/{id}": (401, 403, 403, 200, 404, 200),
        "PATCH /templates/{id}": (401, 403, 403, 200, 404, 200),
        "GET /certificates": (401, 200, 200, 200, 200, 200),
        "GET /certificates/{id}": (401, 200, 404, 200, 404, 200),
        "GET /certificates/{id}.pdf": (401, 200, 404, 200, 404, 200),
        "GET /certificates/{id}/credential": (401, 200, 404, 200, 404, 200),
        "POST /certificates/{id}/revoke": (401, 403, 403, 403, 404, 200),
        "GET /verify/{code}": (200, 200, 200, 200, 200, 200),
        "GET /.well-known/jwks.json": (200, 200, 200, 200, 200, 200),
        "GET /status-lists/{number}": (200, 200, 200, 200, 200, 200),
    }
    assert actual == expected

    # What each sees in the list: the holder and the teacher this one, the others nothing.
    for persona, count in (("holder", 1), ("other_student", 0), ("other_instructor", 0)):
        response = await api.client.get("/certificates", headers=callers[persona])
        assert len((await response.json())["items"]) == count, persona
    response = await api.client.get("/certificates", headers=teacher.headers)
    assert [item["id"] for item in (await response.json())["items"]] == [certificate["id"]]
