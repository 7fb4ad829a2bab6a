"""Every route against every persona: the exact status of each cell, in one table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Headers = dict[str, str]
WorkshopApi = Any


PERSONAS = ("anonymous", "student", "other_student", "instructor", "other_instructor", "admin")

# Rows in the order they run: the ones that withdraw or archive come last.
EXPECTED: dict[str, tuple[int, ...]] = {
    "POST /workshops": (401, 403, 403, 201, 201, 201),
    "GET /workshops": (401, 200, 200, 200, 200, 200),
    "GET /workshops/{id}": (401, 200, 404, 200, 404, 200),
    "PATCH /workshops/{id}": (401, 403, 403, 200, 404, 200),
    "GET /workshops/{id}/enrollments": (401, 403, 403, 200, 404, 200),
    "POST /workshops/{id}/enrollments": (401, 403, 403, 200, 404, 200),
    "POST /workshops/{id}/progress": (401, 200, 404, 403, 403, 403),
    "GET /workshops/{id}/progress/{user_id}": (401, 200, 404, 200, 404, 200),
    "DELETE /workshops/{id}/enrollments/{user_id}": (401, 403, 403, 204, 404, 204),
    "DELETE /workshops/{id}": (401, 403, 403, 204, 404, 204),
}


async def test_every_route_answers_each_persona_exactly(api: WorkshopApi, identity: Any) -> None:
    people = api.people
    client = api.client
    workshop = await api.create(body=api.body(title="Matrix"))
    doomed = await api.create(body=api.body(title="Doomed"))
    victim = identity.account("student-victim")
    await api.enroll(workshop["id"], people.student.id, victim.id)
    await api.enroll(doomed["id"], people.student.id)
    wid = workshop["id"]
    substep = workshop["steps"][0]["substeps"][0]["id"]

    calls: dict[str, Callable[[Headers], Awaitable[Any]]] = {
        "POST /workshops": lambda h: client.post("/workshops", json=api.body(), headers=h),
        "GET /workshops": lambda h: client.get("/workshops", headers=h),
        "GET /workshops/{id}": lambda h: client.get(f"/workshops/{wid}", headers=h),
        "PATCH /workshops/{id}": lambda h: client.patch(
            f"/workshops/{wid}", json={"title": "Matrix"}, headers=h
        ),
        "GET /workshops/{id}/enrollments": lambda h: client.get(
            f"/workshops/{wid}/enrollments", headers=h
        ),
        "POST /workshops/{id}/enrollments": lambda h: client.post(
            f"/workshops/{wid}/enrollments", json={"user_ids": [str(people.student.id)]}, headers=h
        ),
        "POST /workshops/{id}/progress": lambda h: client.post(
            f"/workshops/{wid}/progress", json={"substep_id": substep}, headers=h
        ),
        "GET /workshops/{id}/progress/{user_id}": lambda h: client.get(
            f"/workshops/{wid}/progress/{people.student.id}", headers=h
        ),
        "DELETE /workshops/{id}/enrollments/{user_id}": lambda h: client.delete(
            f"/workshops/{wid}/enrollments/{victim.id}", headers=h
        ),
        "DELETE /workshops/{id}": lambda h: client.delete(f"/workshops/{doomed['id']}", headers=h),
    }
    headers = people.headers()
    actual: dict[str, tuple[int, ...]] = {}
    for route, call in calls.items():
        statuses = []
        for persona in PERSONAS:
            response = await call(headers[persona])
            if response.status >= 400:
                assert response.content_type == "application/problem+json", route
            statuses.append(response.status)
        actual[route] = tuple(statuses)
    assert actual == EXPECTED


async def test_a_student_reads_only_their_own_progress(api: WorkshopApi) -> None:
    people = api.people
    workshop = await api.create()
    await api.enroll(workshop["id"], people.student.id, people.other_student.id)
    own = await api.client.get(
        f"/workshops/{workshop['id']}/progress/{people.student.id}", headers=people.student.headers
    )
    other = await api.client.get(
        f"/workshops/{workshop['id']}/progress/{people.other_student.id}",
        headers=people.student.headers,
    )
    assert (own.status, other.status) == (200, 403)


async def test_withdrawn_students_no_longer_see_the_workshop(api: WorkshopApi) -> None:
    people = api.people
    workshop = await api.create()
    await api.enroll(workshop["id"], people.student.id)
    url = f"/workshops/{workshop['id']}"
    before = await api.client.get(url, headers=people.student.headers)
    withdrawn = await api.client.delete(
        f"{url}/enrollments/{people.student.id}", headers=people.instructor.headers
    )
    after = await api.client.get(url, headers=people.student.headers)
    listed = await (await api.client.get("/workshops", headers=people.student.headers)).json()
    assert (before.status, withdrawn.status, after.status) == (200, 204, 404)
    assert workshop["id"] not in [item["id"] for item in listed["items"]]
    # the instructor still reads the kept progress of the withdrawn student
    kept = await api.client.get(
        f"{url}/progress/{people.student.id}", headers=people.instructor.headers
    )
    assert kept.status == 200
    assert (await kept.json())["status"] == "withdrawn"


async def test_instructor_ids_grant_and_revoke_teaching(api: WorkshopApi) -> None:
    people = api.people
    workshop = await api.create()
    url = f"/workshops/{workshop['id']}"
    assert workshop["instructor_ids"] == [str(people.instructor.id)]
    assert (await api.client.get(url, headers=people.other_instructor.headers)).status == 404
    both = sorted([str(people.instructor.id), str(people.other_instructor.id)])
    shared = await api.client.patch(
        url, json={"instructor_ids": both}, headers=people.instructor.headers
    )
    assert shared.status == 200
    assert (await shared.json())["instructor_ids"] == both
    assert (await api.client.get(url, headers=people.other_instructor.headers)).status == 200
    handed = await api.client.patch(
        url,
        json={"instructor_ids": [str(people.other_instructor.id)]},
        headers=people.other_instructor.headers,
    )
    assert handed.status == 200
    assert (await api.client.get(url, headers=people.instructor.headers)).status == 404


async def test_an_instructor_creating_for_others_still_teaches_it(api: WorkshopApi) -> None:
    people = api.people
    by_instructor = await api.create(
        body={**api.body(), "instructor_ids": [str(people.other_instructor.id)]}
    )
    by_admin = await api.create(
        headers=people.admin.headers,
        body={**api.body(), "instructor_ids": [str(people.instructor.id)]},
    )
    assert by_instructor["instructor_ids"] == sorted(
        [str(people.instructor.id), str(people.other_instructor.id)]
    )
    assert by_admin["instructor_ids"] == [str(people.instructor.id)]


async def test_listing_shows_each_caller_what_they_may_see(api: WorkshopApi) -> None:
    people = api.people
    taught = await api.create(body=api.body(title="Taught"))
    joined = await api.create(headers=people.other_instructor.headers)
    await api.enroll(joined["id"], people.student.id, headers=people.other_instructor.headers)

    async def ids(headers: Headers) -> set[str]:
        body = await (await api.client.get("/workshops", headers=headers)).json()
        return {item["id"] for item in body["items"]}

    assert await ids(people.instructor.headers) >= {taught["id"]}
    assert joined["id"] not in await ids(people.instructor.headers)
    assert joined["id"] in await ids(people.student.headers)
    assert taught["id"] not in await ids(people.student.headers)
    assert await ids(people.admin.headers) >= {taught["id"], joined["id"]}
