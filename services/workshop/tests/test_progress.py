"""Enrollments and progress: idempotency, exact events in order, concurrency."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

WorkshopApi = Any


async def test_enrolling_many_at_once_is_idempotent(api: WorkshopApi) -> None:
    created = await api.create()
    users = [uuid.uuid4() for _ in range(3)]
    first = await api.enroll(created["id"], users[0], users[1], users[0])
    assert first["created"] == 2
    assert [item["user_id"] for item in first["items"]] == [str(users[0]), str(users[1])]
    assert all(item["created"] and item["status"] == "active" for item in first["items"])
    second = await api.enroll(created["id"], *users)
    assert second["created"] == 1
    assert [item["created"] for item in second["items"]] == [False, False, True]
    assert second["items"][0]["id"] == first["items"][0]["id"]
    events = await api.settle()
    assert events.count("enrollment.created") == 3
    subjects = {e.subject for e in api.published if e.type.endswith("enrollment.created.v1")}
    assert subjects == {item["id"] for item in second["items"]}


async def test_enrollments_page_in_enrollment_order(api: WorkshopApi) -> None:
    created = await api.create()
    users = [uuid.uuid4() for _ in range(7)]
    for user in users:
        await api.enroll(created["id"], user)
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        response = await api.client.get(
            f"/workshops/{created['id']}/enrollments{query}", headers=api.people.admin.headers
        )
        page = await response.json()
        seen += [item["user_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(u) for u in users]
    bad = await api.client.get(
        f"/workshops/{created['id']}/enrollments?cursor=nonsense", headers=api.people.admin.headers
    )
    assert bad.status == 422
    assert (await bad.json())["errors"][0]["field"] == "cursor"


async def test_withdraw_and_reenroll_are_each_one_event(api: WorkshopApi) -> None:
    created = await api.create()
    user = uuid.uuid4()
    url = f"/workshops/{created['id']}/enrollments/{user}"
    headers = api.people.instructor.headers
    first = await api.enroll(created["id"], user)
    assert (await api.client.delete(url, headers=headers)).status == 204
    assert (await api.client.delete(url, headers=headers)).status == 204
    again = await api.enroll(created["id"], user)
    assert again["created"] == 1
    assert again["items"][0]["id"] == first["items"][0]["id"]
    assert (await api.enroll(created["id"], user))["created"] == 0
    unknown = await api.client.delete(
        f"/workshops/{created['id']}/enrollments/{uuid.uuid4()}", headers=headers
    )
    assert unknown.status == 404
    assert await api.settle() == [
        "workshop.created",
        "enrollment.created",
        "enrollment.withdrawn",
        "enrollment.created",
    ]


async def test_concurrent_enrollments_of_the_same_users_create_each_once(
    api: WorkshopApi,
) -> None:
    created = await api.create()
    users = [str(uuid.uuid4()) for _ in range(20)]
    responses = await asyncio.gather(
        *(
            api.client.post(
                f"/workshops/{created['id']}/enrollments",
                json={"user_ids": users},
                headers=api.people.admin.headers,
            )
            for _ in range(5)
        )
    )
    assert [r.status for r in responses] == [200] * 5
    assert sum([(await r.json())["created"] for r in responses]) == 20
    assert (await api.settle()).count("enrollment.created") == 20


async def test_progress_completes_steps_and_the_workshop_once(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create(body=api.body(steps=2, substeps=2))
    wid = created["id"]
    enrolled = await api.enroll(wid, people.student.id)
    enrollment_id = enrolled["items"][0]["id"]
    subs = [sub["id"] for step in created["steps"] for sub in step["substeps"]]
    first = await api.done(wid, subs[0], people.student.headers)
    assert first == {
        "enrollment_id": enrollment_id,
        "workshop_id": wid,
        "user_id": str(people.student.id),
        "substeps_done": 1,
        "substep_count": 4,
        "percent": 25.0,
        "completed_steps": 0,
        "step_count": 2,
        "completed": False,
        "completed_at": None,
    }
    assert await api.done(wid, subs[0], people.student.headers) == first
    await api.done(wid, subs[1], people.student.headers)
    await api.done(wid, subs[3], people.student.headers)
    last = await api.done(wid, subs[2], people.student.headers)
    assert (last["substeps_done"], last["completed_steps"], last["percent"]) == (4, 2, 100.0)
    assert last["completed"] is True and last["completed_at"]
    assert await api.done(wid, subs[2], people.student.headers) == last
    kinds = await api.settle(where=lambda e: e.subject == enrollment_id)
    assert kinds == [
        "enrollment.created",
        "substep.completed",
        "substep.completed",
        "step.completed",
        "substep.completed",
        "substep.completed",
        "step.completed",
        "workshop.completed",
    ]
    counts = [
        (e.data["substeps_done"], e.data["substep_count"])
        for e in api.published
        if e.type.endswith("substep.completed.v1")
    ]
    assert counts == [(1, 4), (2, 4), (3, 4), (4, 4)]
    steps = [
        e.data["step_id"] for e in api.published if e.type.endswith(".workshop.step.completed.v1")
    ]
    assert steps == [created["steps"][0]["id"], created["steps"][1]["id"]]
    detail = await (
        await api.client.get(
            f"/workshops/{wid}/progress/{people.student.id}", headers=people.instructor.headers
        )
    ).json()
    assert detail["completed"] is True
    assert [s["completed"] for s in detail["steps"]] == [True, True]
    assert all(
        sub["done"] and sub["completed_at"] for s in detail["steps"] for sub in s["substeps"]
    )
    # The student reads the same as `me`; an instructor's `me` is not enrolled.
    own = await api.client.get(f"/workshops/{wid}/progress/me", headers=people.student.headers)
    assert own.status == 200 and await own.json() == detail
    theirs = await api.client.get(
        f"/workshops/{wid}/progress/me", headers=people.instructor.headers
    )
    assert theirs.status == 404


async def test_progress_on_a_foreign_or_unknown_substep_is_refused(api: WorkshopApi) -> None:
    people = api.people
    mine = await api.create()
    other = await api.create()
    await api.enroll(mine["id"], people.student.id)
    url = f"/workshops/{mine['id']}/progress"
    foreign = other["steps"][0]["substeps"][0]["id"]
    for substep, reason in ((foreign, "another workshop"), (str(uuid.uuid4()), "no such")):
        response = await api.client.post(
            url, json={"substep_id": substep}, headers=people.student.headers
        )
        assert response.status == 422
        error = (await response.json())["errors"][0]
        assert error["field"] == "substep_id" and reason in error["reason"]
    nowhere = await api.client.post(
        f"/workshops/{uuid.uuid4()}/progress",
        json={"substep_id": foreign},
        headers=people.student.headers,
    )
    assert nowhere.status == 404
    assert await api.settle() == ["workshop.created", "workshop.created", "enrollment.created"]


async def test_concurrent_repeats_of_one_substep_make_one_event(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create(body=api.body(steps=1, substeps=2))
    await api.enroll(created["id"], people.student.id)
    substep = created["steps"][0]["substeps"][0]["id"]
    responses = await asyncio.gather(
        *(
            api.client.post(
                f"/workshops/{created['id']}/progress",
                json={"substep_id": substep},
                headers=people.student.headers,
            )
            for _ in range(10)
        )
    )
    bodies = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200] * 10
    assert all(body["substeps_done"] == 1 for body in bodies)
    assert (await api.settle()).count("substep.completed") == 1


async def test_concurrently_finishing_the_last_substeps_completes_once(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create(body=api.body(steps=1, substeps=6))
    await api.enroll(created["id"], people.student.id)
    subs = [sub["id"] for sub in created["steps"][0]["substeps"]]
    responses = await asyncio.gather(
        *(
            api.client.post(
                f"/workshops/{created['id']}/progress",
                json={"substep_id": substep},
                headers=people.student.headers,
            )
            for substep in subs
        )
    )
    assert [r.status for r in responses] == [200] * 6
    done = sorted([(await r.json())["substeps_done"] for r in responses])
    assert done == [1, 2, 3, 4, 5, 6]
    kinds = await api.settle()
    assert kinds.count("substep.completed") == 6
    assert kinds.count("step.completed") == 1
    assert kinds.count("workshop.completed") == 1
    assert kinds[-2:] == ["step.completed", "workshop.completed"]


async def test_concurrent_withdrawals_emit_one_event(api: WorkshopApi) -> None:
    created = await api.create()
    user = uuid.uuid4()
    await api.enroll(created["id"], user)
    responses = await asyncio.gather(
        *(
            api.client.delete(
                f"/workshops/{created['id']}/enrollments/{user}",
                headers=api.people.instructor.headers,
            )
            for _ in range(5)
        )
    )
    assert [r.status for r in responses] == [204] * 5
    assert (await api.settle()).count("enrollment.withdrawn") == 1
