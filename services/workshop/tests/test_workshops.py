"""Workshops: creating, reading, listing, editing, archiving, and their events."""

from __future__ import annotations

import asyncio
from typing import Any

WorkshopApi = Any


async def test_a_created_workshop_comes_back_with_ids_in_order(api: WorkshopApi) -> None:
    body = api.body(steps=3, substeps=2)
    body["steps"][1]["substeps"][1].pop("estimated_minutes")
    created = await api.create(body=body)
    assert created["status"] == "active"
    assert created["version"] == 1
    assert (created["step_count"], created["substep_count"]) == (3, 6)
    assert [s["title"] for s in created["steps"]] == ["Step 0", "Step 1", "Step 2"]
    assert created["steps"][1]["substeps"][1]["estimated_minutes"] is None
    ids = [s["id"] for s in created["steps"]] + [
        sub["id"] for s in created["steps"] for sub in s["substeps"]
    ]
    assert len(set(ids)) == 9
    read = await api.client.get(
        f"/workshops/{created['id']}", headers=api.people.instructor.headers
    )
    assert read.status == 200
    assert await read.json() == created
    assert await api.settle() == ["workshop.created"]
    event = api.published[0]
    assert event.subject == created["id"]
    assert event.data["step_count"] == 3 and event.data["substep_count"] == 6
    assert event.data["instructor_ids"] == [str(api.people.instructor.id)]


async def test_a_large_workshop_reads_back_whole(api: WorkshopApi) -> None:
    body = api.body(steps=200, substeps=10)
    for step in body["steps"]:
        for sub in step["substeps"]:
            sub["body"] = "Some *markdown* text. " * 40
    created = await api.create(body=body)
    read = await api.client.get(f"/workshops/{created['id']}", headers=api.people.admin.headers)
    workshop = await read.json()
    assert workshop["substep_count"] == 2000
    assert [s["title"] for s in workshop["steps"]] == [f"Step {i}" for i in range(200)]
    assert workshop == created


async def test_listing_pages_newest_first_with_a_stable_cursor(api: WorkshopApi) -> None:
    made = [(await api.create(body=api.body(title=f"W{i}")))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await (
            await api.client.get(f"/workshops{query}", headers=api.people.instructor.headers)
        ).json()
        seen += [item["id"] for item in page["items"]]
        assert "steps" not in page["items"][0]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


async def test_patch_edits_reorders_adds_and_removes(api: WorkshopApi) -> None:
    created = await api.create(body=api.body(steps=3, substeps=2))
    steps = api.patchable(created)
    _, second, third = steps
    second["substeps"].reverse()
    second["substeps"][0]["body"] = "new body"
    third["substeps"].pop()
    new_step = {"title": "Fresh", "substeps": [{"title": "New substep", "body": ""}]}
    patch = {"title": "Renamed", "steps": [third, second, new_step]}
    response = await api.client.patch(
        f"/workshops/{created['id']}", json=patch, headers=api.people.instructor.headers
    )
    assert response.status == 200, await response.text()
    updated = await response.json()
    assert updated["version"] == 2
    assert updated["title"] == "Renamed"
    assert [s["id"] for s in updated["steps"][:2]] == [third["id"], second["id"]]
    assert updated["steps"][0]["substeps"] == third["substeps"]
    assert [s["id"] for s in updated["steps"][1]["substeps"]] == [
        sub["id"] for sub in second["substeps"]
    ]
    assert updated["steps"][1]["substeps"][0]["body"] == "new body"
    assert updated["steps"][2]["title"] == "Fresh" and updated["steps"][2]["id"]
    assert (updated["step_count"], updated["substep_count"]) == (3, 4)
    read = await api.client.get(
        f"/workshops/{created['id']}", headers=api.people.instructor.headers
    )
    assert await read.json() == updated
    assert await api.settle() == ["workshop.created", "workshop.updated"]


async def test_a_patch_that_changes_nothing_is_not_a_new_version(api: WorkshopApi) -> None:
    created = await api.create()
    url = f"/workshops/{created['id']}"
    same = {
        "title": created["title"],
        "description": created["description"],
        "instructor_ids": created["instructor_ids"],
        "steps": api.patchable(created),
    }
    for _ in range(2):
        response = await api.client.patch(url, json=same, headers=api.people.instructor.headers)
        assert response.status == 200
        assert (await response.json())["version"] == 1
    assert await api.settle() == ["workshop.created"]


async def test_patch_checks_the_version_when_given(api: WorkshopApi) -> None:
    created = await api.create()
    url = f"/workshops/{created['id']}"
    headers = api.people.instructor.headers
    ok = await api.client.patch(url, json={"title": "One", "version": 1}, headers=headers)
    stale = await api.client.patch(url, json={"title": "Two", "version": 1}, headers=headers)
    assert (ok.status, stale.status) == (200, 409)
    assert (await (await api.client.get(url, headers=headers)).json())["title"] == "One"


async def test_ids_of_another_workshop_are_refused_naming_the_field(api: WorkshopApi) -> None:
    mine = await api.create()
    other = await api.create()
    steps = api.patchable(mine)
    steps[1]["substeps"][0]["id"] = other["steps"][0]["substeps"][0]["id"]
    steps[0]["id"] = other["steps"][0]["id"]
    response = await api.client.patch(
        f"/workshops/{mine['id']}", json={"steps": steps}, headers=api.people.instructor.headers
    )
    assert response.status == 422
    fields = {error["field"] for error in (await response.json())["errors"]}
    assert fields == {"steps.0.id", "steps.1.substeps.0.id"}
    duplicated = api.patchable(mine)
    duplicated[1]["id"] = duplicated[0]["id"]
    again = await api.client.patch(
        f"/workshops/{mine['id']}",
        json={"steps": duplicated},
        headers=api.people.instructor.headers,
    )
    assert again.status == 422
    assert [e["field"] for e in (await again.json())["errors"]] == ["steps.1.id"]
    read = await api.client.get(f"/workshops/{mine['id']}", headers=api.people.instructor.headers)
    assert (await read.json())["version"] == 1


async def test_removing_a_substep_with_progress_is_a_conflict(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create()
    await api.enroll(created["id"], people.student.id)
    done = created["steps"][0]["substeps"][1]["id"]
    await api.done(created["id"], done, people.student.headers)
    steps = api.patchable(created)
    steps[0]["substeps"].pop(1)
    refused = await api.client.patch(
        f"/workshops/{created['id']}", json={"steps": steps}, headers=people.instructor.headers
    )
    assert refused.status == 409
    assert done in (await refused.text())
    whole_step = await api.client.patch(
        f"/workshops/{created['id']}",
        json={"steps": api.patchable(created)[1:]},
        headers=people.instructor.headers,
    )
    assert whole_step.status == 409
    untouched = api.patchable(created)
    untouched[0]["substeps"].pop(0)  # no one did this one
    allowed = await api.client.patch(
        f"/workshops/{created['id']}", json={"steps": untouched}, headers=people.instructor.headers
    )
    assert allowed.status == 200


async def test_an_edit_that_completes_a_step_says_so_and_recounts(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create(body=api.body(steps=2, substeps=2))
    await api.enroll(created["id"], people.student.id)
    first = created["steps"][0]["substeps"]
    await api.done(created["id"], first[0]["id"], people.student.headers)
    steps = api.patchable(created)
    steps[0]["substeps"].pop(1)  # the student's one open substep of step 0
    steps[1]["substeps"].append({"title": "More", "body": ""})
    response = await api.client.patch(
        f"/workshops/{created['id']}", json={"steps": steps}, headers=people.instructor.headers
    )
    assert response.status == 200
    progress = await (
        await api.client.get(
            f"/workshops/{created['id']}/progress/{people.student.id}",
            headers=people.student.headers,
        )
    ).json()
    assert (progress["substeps_done"], progress["substep_count"]) == (1, 4)
    assert progress["completed_steps"] == 1
    assert progress["steps"][0]["completed"] is True
    kinds = await api.settle()
    assert kinds == [
        "workshop.created",
        "enrollment.created",
        "substep.completed",
        "step.completed",
        "workshop.updated",
    ]


async def test_delete_without_enrollments_deletes_and_says_archived(api: WorkshopApi) -> None:
    created = await api.create()
    url = f"/workshops/{created['id']}"
    headers = api.people.instructor.headers
    assert (await api.client.delete(url, headers=headers)).status == 204
    assert (await api.client.get(url, headers=headers)).status == 404
    assert (await api.client.delete(url, headers=headers)).status == 404
    assert await api.settle() == ["workshop.created", "workshop.archived"]


async def test_an_archived_workshop_is_read_only(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create()
    await api.enroll(created["id"], people.student.id)
    url = f"/workshops/{created['id']}"
    headers = people.instructor.headers
    assert (await api.client.delete(url, headers=headers)).status == 204
    assert (await api.client.delete(url, headers=people.admin.headers)).status == 204
    read = await api.client.get(url, headers=people.student.headers)
    assert read.status == 200
    assert (await read.json())["status"] == "archived"
    substep = created["steps"][0]["substeps"][0]["id"]
    statuses = [
        (await api.client.patch(url, json={"title": "x"}, headers=headers)).status,
        (
            await api.client.post(
                f"{url}/enrollments",
                json={"user_ids": [str(people.other_student.id)]},
                headers=headers,
            )
        ).status,
        (
            await api.client.post(
                f"{url}/progress", json={"substep_id": substep}, headers=people.student.headers
            )
        ).status,
        (await api.client.delete(f"{url}/enrollments/{people.student.id}", headers=headers)).status,
        (await api.client.get(f"{url}/enrollments", headers=headers)).status,
        (await api.client.get(f"{url}/progress/{people.student.id}", headers=headers)).status,
    ]
    assert statuses == [409, 409, 409, 409, 200, 200]
    archived = await (await api.client.get("/workshops?status=archived", headers=headers)).json()
    assert [item["id"] for item in archived["items"]] == [created["id"]]
    assert await api.settle() == ["workshop.created", "enrollment.created", "workshop.archived"]


async def test_concurrent_archives_emit_one_event(api: WorkshopApi) -> None:
    created = await api.create()
    await api.enroll(created["id"], api.people.student.id)
    url = f"/workshops/{created['id']}"
    responses = await asyncio.gather(
        *(api.client.delete(url, headers=api.people.admin.headers) for _ in range(5))
    )
    assert [r.status for r in responses] == [204] * 5
    assert (await api.settle()).count("workshop.archived") == 1


async def test_the_cache_never_serves_an_old_version(api: WorkshopApi) -> None:
    created = await api.create()
    url = f"/workshops/{created['id']}"
    headers = api.people.instructor.headers
    for title in ("A", "B", "C"):
        await api.client.patch(url, json={"title": title}, headers=headers)
        read = await (await api.client.get(url, headers=headers)).json()
        assert read["title"] == title
    assert read["version"] == 4


async def test_a_substep_moved_to_another_step_keeps_its_progress(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create(body=api.body(steps=2, substeps=2))
    await api.enroll(created["id"], people.student.id)
    moving = created["steps"][0]["substeps"][0]["id"]
    for sub in created["steps"][1]["substeps"]:
        await api.done(created["id"], sub["id"], people.student.headers)
    await api.done(created["id"], moving, people.student.headers)
    steps = api.patchable(created)
    steps[1]["substeps"].append(steps[0]["substeps"].pop(0))
    response = await api.client.patch(
        f"/workshops/{created['id']}", json={"steps": steps}, headers=people.instructor.headers
    )
    assert response.status == 200
    assert [len(s["substeps"]) for s in (await response.json())["steps"]] == [1, 3]
    detail = await (
        await api.client.get(
            f"/workshops/{created['id']}/progress/{people.student.id}",
            headers=people.instructor.headers,
        )
    ).json()
    assert [s["completed"] for s in detail["steps"]] == [False, True]
    assert (detail["substeps_done"], detail["completed_steps"]) == (3, 1)
    last = created["steps"][0]["substeps"][1]["id"]
    finished = await api.done(created["id"], last, people.student.headers)
    assert finished["completed"] is True
    kinds = await api.settle()
    assert kinds.count("step.completed") == 2  # step 1 before the edit, step 0 at the end
    assert kinds.count("workshop.completed") == 1


async def test_summaries_and_workshops_agree_on_times(api: WorkshopApi) -> None:
    created = await api.create()
    listed = await (
        await api.client.get("/workshops", headers=api.people.instructor.headers)
    ).json()
    summary = listed["items"][0]
    assert summary["created_at"] == created["created_at"]
    assert summary["updated_at"] == created["updated_at"]
    assert created["created_at"].endswith("Z")


async def test_concurrent_identical_patches_make_one_version(api: WorkshopApi) -> None:
    created = await api.create()
    url = f"/workshops/{created['id']}"
    responses = await asyncio.gather(
        *(
            api.client.patch(url, json={"title": "Same"}, headers=api.people.instructor.headers)
            for _ in range(5)
        )
    )
    assert [r.status for r in responses] == [200] * 5
    assert {(await r.json())["version"] for r in responses} == {2}
    assert await api.settle() == ["workshop.created", "workshop.updated"]
