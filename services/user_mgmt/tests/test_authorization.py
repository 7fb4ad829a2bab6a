"""The authorization matrix: every route against each persona, with exact statuses."""

from __future__ import annotations

from typing import Any

PERSONAS = ("anonymous", "self", "other_student", "instructor", "admin", "service")


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


async def post_statuses(api: Any, callers: dict[str, dict[str, str]], csv: str) -> tuple[int, ...]:
    found = []
    for persona in PERSONAS:
        headers = {**callers[persona], "Content-Type": "text/csv"}
        found.append((await api.client.post("/imports", data=csv, headers=headers)).status)
    return tuple(found)


async def test_authorization_matrix(api: Any, service_headers: dict[str, str]) -> None:
    student = api.account("matrix-student")
    await api.registered(student)
    callers = {
        "anonymous": {},
        "self": student.headers,
        "other_student": api.account("matrix-other-student").headers,
        "instructor": api.account("matrix-instructor", "instructor").headers,
        "admin": api.admin.headers,
        "service": service_headers,
    }
    p = f"/profiles/{student.id}"
    csv = "email,full_name\nmatrix-import@example.com,Matrix Import\n"
    ran = await api.client.post(
        "/imports", data=csv, headers={**api.admin.headers, "Content-Type": "text/csv"}
    )
    i = f"/imports/{(await ran.json())['id']}"
    actual = {
        "GET /profiles": await statuses(api, callers, "GET", "/profiles"),
        "GET /profiles/{id}": await statuses(api, callers, "GET", p),
        "PATCH /profiles/{id}": await statuses(api, callers, "PATCH", p, {"bio": "hi"}),
        "PUT /profiles/{id}/roles": await statuses(
            api, callers, "PUT", f"{p}/roles", {"roles": ["student"]}
        ),
        "GET /imports/{id}": await statuses(api, callers, "GET", i),
        "GET /imports/{id}/rows": await statuses(api, callers, "GET", f"{i}/rows"),
    }
    actual["POST /imports"] = await post_statuses(api, callers, csv)
    # anonymous, self, other student, instructor, admin, service
    expected = {
        "GET /profiles": (401, 403, 403, 200, 200, 200),
        "GET /profiles/{id}": (401, 200, 404, 200, 200, 200),
        "PATCH /profiles/{id}": (401, 200, 404, 403, 200, 200),
        "PUT /profiles/{id}/roles": (401, 403, 403, 403, 200, 200),
        # Only who ran an import sees it: its report holds set-password tokens.
        "GET /imports/{id}": (401, 403, 403, 403, 200, 404),
        "GET /imports/{id}/rows": (401, 403, 403, 403, 200, 404),
        "POST /imports": (401, 403, 403, 403, 202, 202),
    }
    assert actual == expected
