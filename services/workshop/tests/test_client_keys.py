"""What a machine client (the operator) needs to find what it made: workshops carry the
creating client's external_id, a schedule, and steps and substeps carry keys."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

WorkshopApi = Any
Headers = dict[str, str]

KEY = "cohorts/3f0c9a5e-0b7e-4e55-9a8e-1d2f3c4b5a69"


@pytest.fixture
def operator(identity: Any) -> Headers:
    return identity.machine_headers("operator")


def keyed(api: WorkshopApi, external_id: str = KEY, **fields: Any) -> dict[str, Any]:
    return {**api.body(), "external_id": external_id, **fields}


async def find(api: WorkshopApi, headers: Headers, query: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"/workshops?{query}", headers=headers)
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


# -- external ids ----------------------------------------------------------------------------


async def test_a_client_finds_the_workshop_it_created_by_its_external_id(
    api: WorkshopApi, operator: Headers
) -> None:
    created = await api.create(headers=operator, body=keyed(api))
    assert created["external_id"] == KEY
    await api.create(headers=operator, body=keyed(api, "cohorts/another"))
    found = await find(api, operator, f"external_id={KEY}")
    assert [item["id"] for item in found] == [created["id"]]
    assert found[0]["external_id"] == KEY
    active = await find(api, operator, f"external_id={KEY}&status=active")
    assert [item["id"] for item in active] == [created["id"]]
    read = await api.client.get(f"/workshops/{created['id']}", headers=operator)
    assert (await read.json())["external_id"] == KEY
    plain = await api.create()
    assert plain["external_id"] is None
    assert await find(api, operator, "external_id=cohorts/none") == []


async def test_a_second_active_workshop_with_the_key_is_a_conflict_and_writes_nothing(
    api: WorkshopApi, operator: Headers
) -> None:
    first = await api.create(headers=operator, body=keyed(api))
    again = await api.client.post("/workshops", json=keyed(api, title="Again"), headers=operator)
    assert again.status == 409
    assert again.content_type == "application/problem+json"
    problem = await again.json()
    assert [error["field"] for error in problem["errors"]] == ["external_id"]
    listed = await find(api, api.people.admin.headers, "")
    assert [item["id"] for item in listed] == [first["id"]]
    assert await api.settle() == ["workshop.created"]


async def test_concurrent_creates_with_one_key_make_one_workshop(
    api: WorkshopApi, operator: Headers
) -> None:
    responses = await asyncio.gather(
        *(api.client.post("/workshops", json=keyed(api), headers=operator) for _ in range(5))
    )
    assert sorted(r.status for r in responses) == [201, 409, 409, 409, 409]
    assert len(await find(api, operator, f"external_id={KEY}")) == 1
    assert await api.settle() == ["workshop.created"]


async def test_an_archived_workshop_frees_its_key(api: WorkshopApi, operator: Headers) -> None:
    old = await api.create(headers=operator, body=keyed(api))
    await api.enroll(old["id"], api.people.student.id, headers=operator)
    assert (await api.client.delete(f"/workshops/{old['id']}", headers=operator)).status == 204
    new = await api.create(headers=operator, body=keyed(api))
    both = await find(api, operator, f"external_id={KEY}")
    assert [item["id"] for item in both] == [new["id"], old["id"]]
    assert [item["status"] for item in both] == ["active", "archived"]
    active = await find(api, operator, f"external_id={KEY}&status=active")
    assert [item["id"] for item in active] == [new["id"]]
    again = await api.client.post("/workshops", json=keyed(api), headers=operator)
    assert again.status == 409


async def test_a_deleted_workshop_frees_its_key(api: WorkshopApi, operator: Headers) -> None:
    old = await api.create(headers=operator, body=keyed(api))
    assert (await api.client.delete(f"/workshops/{old['id']}", headers=operator)).status == 204
    new = await api.create(headers=operator, body=keyed(api))
    found = await find(api, operator, f"external_id={KEY}")
    assert [item["id"] for item in found] == [new["id"]]


async def test_each_client_sees_and_holds_only_its_own_keys(
    api: WorkshopApi, operator: Headers, identity: Any
) -> None:
    admin = api.people.admin.headers
    other_client = identity.machine_headers()
    by_operator = await api.create(headers=operator, body=keyed(api))
    # The admin sees every workshop, but a key finds only its own.
    assert by_operator["id"] in [item["id"] for item in await find(api, admin, "")]
    assert await find(api, admin, f"external_id={KEY}") == []
    assert await find(api, other_client, f"external_id={KEY}") == []
    by_admin = await api.create(headers=admin, body=keyed(api))
    by_other = await api.create(headers=other_client, body=keyed(api))
    by_instructor = await api.create(body=keyed(api))
    assert [w["id"] for w in await find(api, admin, f"external_id={KEY}")] == [by_admin["id"]]
    assert [w["id"] for w in await find(api, operator, f"external_id={KEY}")] == [by_operator["id"]]
    assert [w["id"] for w in await find(api, other_client, f"external_id={KEY}")] == [
        by_other["id"]
    ]
    instructor = api.people.instructor.headers
    assert [w["id"] for w in await find(api, instructor, f"external_id={KEY}")] == [
        by_instructor["id"]
    ]


async def test_the_external_id_cannot_be_patched(api: WorkshopApi, operator: Headers) -> None:
    created = await api.create(headers=operator, body=keyed(api))
    url = f"/workshops/{created['id']}"
    response = await api.client.patch(url, json={"external_id": "other"}, headers=operator)
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["external_id"]
    assert (await (await api.client.get(url, headers=operator)).json())["external_id"] == KEY


@pytest.mark.parametrize(
    ("external_id", "reason"),
    [
        ("", "at least 1"),
        ("x" * 321, "at most 320"),
        ("line\nbreak", "control characters"),
        ("tab\there", "control characters"),
        ("nul\x00", "control characters"),
        ("c1\x85", "control characters"),
    ],
)
async def test_invalid_external_ids_are_refused(
    api: WorkshopApi, operator: Headers, external_id: str, reason: str
) -> None:
    response = await api.client.post("/workshops", json=keyed(api, external_id), headers=operator)
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert any(e["field"] == "external_id" and reason in e["reason"] for e in errors), errors
    assert await find(api, api.people.admin.headers, "") == []


async def test_the_longest_external_id_fits(api: WorkshopApi, operator: Headers) -> None:
    longest = "k/" + "é" * 318
    created = await api.create(headers=operator, body=keyed(api, longest))
    assert created["external_id"] == longest
    found = await find(api, operator, f"external_id={longest}")
    assert [item["id"] for item in found] == [created["id"]]


# -- schedules ---------------------------------------------------------------------------------


async def test_a_schedule_is_stored_in_utc_and_shown_in_summaries(api: WorkshopApi) -> None:
    body = {**api.body(), "starts_at": "2027-03-01T09:00:00+02:00", "ends_at": "2027-03-05T17:30Z"}
    created = await api.create(body=body)
    assert (created["starts_at"], created["ends_at"]) == (
        "2027-03-01T07:00:00Z",
        "2027-03-05T17:30:00Z",
    )
    headers = api.people.instructor.headers
    read = await (await api.client.get(f"/workshops/{created['id']}", headers=headers)).json()
    assert read == created
    summary = (await find(api, headers, ""))[0]
    assert (summary["starts_at"], summary["ends_at"]) == (created["starts_at"], created["ends_at"])
    unscheduled = await api.create()
    assert (unscheduled["starts_at"], unscheduled["ends_at"]) == (None, None)


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"starts_at": "2027-03-05T00:00:00Z", "ends_at": "2027-03-01T00:00:00Z"}, "ends_at"),
        ({"starts_at": "2027-03-05T00:00:00Z", "ends_at": "2027-03-05T02:00:00+02:00"}, "ends_at"),
        ({"starts_at": "2027-03-05T00:00:00"}, "starts_at"),
        ({"ends_at": "tomorrow"}, "ends_at"),
    ],
)
async def test_a_bad_schedule_is_refused_naming_the_field(
    api: WorkshopApi, schedule: dict[str, str], field: str
) -> None:
    response = await api.client.post(
        "/workshops", json={**api.body(), **schedule}, headers=api.people.instructor.headers
    )
    assert response.status == 422
    assert field in [e["field"] for e in (await response.json())["errors"]]
    assert await find(api, api.people.admin.headers, "") == []


async def test_patch_sets_moves_and_clears_the_schedule_against_the_stored_one(
    api: WorkshopApi,
) -> None:
    body = {**api.body(), "starts_at": "2027-03-01T09:00:00Z", "ends_at": "2027-03-05T17:00:00Z"}
    created = await api.create(body=body)
    url = f"/workshops/{created['id']}"
    headers = api.people.instructor.headers

    async def patch(change: dict[str, Any]) -> Any:
        return await api.client.patch(url, json=change, headers=headers)

    for change in ({"ends_at": "2027-02-01T00:00:00Z"}, {"starts_at": "2027-03-05T17:00:00Z"}):
        refused = await patch(change)
        assert refused.status == 422, change
        assert [e["field"] for e in (await refused.json())["errors"]] == ["ends_at"]
    same = await patch({"starts_at": "2027-03-01T11:00:00+02:00"})
    assert (await same.json())["version"] == 1
    moved = await (await patch({"ends_at": "2027-03-06T17:00:00Z"})).json()
    assert (moved["starts_at"], moved["ends_at"], moved["version"]) == (
        "2027-03-01T09:00:00Z",
        "2027-03-06T17:00:00Z",
        2,
    )
    cleared = await (await patch({"starts_at": None})).json()
    assert (cleared["starts_at"], cleared["ends_at"], cleared["version"]) == (
        None,
        "2027-03-06T17:00:00Z",
        3,
    )
    early_end = await (await patch({"ends_at": "2020-01-01T00:00:00Z"})).json()
    assert early_end["ends_at"] == "2020-01-01T00:00:00Z"
    both = await patch({"starts_at": "2027-01-02T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"})
    assert both.status == 422
    read = await (await api.client.get(url, headers=headers)).json()
    assert read == early_end
    assert (await find(api, headers, ""))[0]["ends_at"] == "2020-01-01T00:00:00Z"
    kinds = await api.settle()
    assert kinds == ["workshop.created"] + ["workshop.updated"] * 3


# -- step and substep keys ---------------------------------------------------------------------


def keyed_steps() -> list[dict[str, Any]]:
    return [
        {
            "key": "setup",
            "title": "Setup",
            "substeps": [{"key": "install", "title": "Install"}, {"title": "Unkeyed"}],
        },
        {"key": "deploy", "title": "Deploy", "substeps": [{"key": "install", "title": "Again"}]},
        {"title": "Wrap up", "substeps": [{"title": "Done"}]},
    ]


async def test_steps_and_substeps_come_back_with_their_keys(api: WorkshopApi) -> None:
    created = await api.create(body={**api.body(), "steps": keyed_steps()})
    assert [step["key"] for step in created["steps"]] == ["setup", "deploy", None]
    assert [[sub["key"] for sub in step["substeps"]] for step in created["steps"]] == [
        ["install", None],
        ["install"],
        [None],
    ]
    read = await api.client.get(
        f"/workshops/{created['id']}", headers=api.people.instructor.headers
    )
    assert await read.json() == created


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({1: {"key": "setup"}}, "steps.1.key", "another step"),
        (
            {0: {"substeps": [{"key": "a", "title": "x"}, {"key": "a", "title": "y"}]}},
            "steps.0.substeps.1.key",
            "another substep",
        ),
        ({0: {"key": "Setup"}}, "steps.0.key", "pattern"),
        ({0: {"key": "-setup"}}, "steps.0.key", "pattern"),
        ({0: {"key": "a" * 64}}, "steps.0.key", "pattern"),
        ({2: {"substeps": [{"key": "", "title": "x"}]}}, "steps.2.substeps.0.key", "pattern"),
    ],
)
async def test_bad_or_repeated_keys_are_refused_naming_the_field(
    api: WorkshopApi, change: dict[int, dict[str, Any]], field: str, reason: str
) -> None:
    steps = keyed_steps()
    for index, fields in change.items():
        steps[index].update(fields)
    response = await api.client.post(
        "/workshops", json={**api.body(), "steps": steps}, headers=api.people.instructor.headers
    )
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert any(e["field"] == field and reason in e["reason"] for e in errors), errors
    assert await find(api, api.people.admin.headers, "") == []


async def test_the_longest_key_fits(api: WorkshopApi) -> None:
    steps = keyed_steps()
    steps[0]["key"] = "a" + "-" * 61 + "z"
    created = await api.create(body={**api.body(), "steps": steps})
    assert created["steps"][0]["key"] == steps[0]["key"]


async def test_keys_stay_with_their_items_across_a_patch_that_moves_them(
    api: WorkshopApi,
) -> None:
    created = await api.create(body={**api.body(), "steps": keyed_steps()})
    url = f"/workshops/{created['id']}"
    headers = api.people.instructor.headers
    setup, deploy, wrap_up = api.patchable(created)
    # Reorder the steps, move the unkeyed substep into the last step, and key that step.
    wrap_up["key"] = "wrap-up"
    wrap_up["substeps"].append(setup["substeps"].pop(1))
    response = await api.client.patch(
        url, json={"steps": [deploy, wrap_up, setup]}, headers=headers
    )
    assert response.status == 200, await response.text()
    updated = await response.json()
    assert updated["version"] == 2
    assert [(s["id"], s["key"]) for s in updated["steps"]] == [
        (deploy["id"], "deploy"),
        (wrap_up["id"], "wrap-up"),
        (setup["id"], "setup"),
    ]
    assert [(s["id"], s["key"]) for s in updated["steps"][1]["substeps"]] == [
        (sub["id"], sub["key"]) for sub in wrap_up["substeps"]
    ]
    assert await (await api.client.get(url, headers=headers)).json() == updated


async def test_a_patch_items_key_replaces_the_stored_one(api: WorkshopApi) -> None:
    created = await api.create(body={**api.body(), "steps": keyed_steps()})
    url = f"/workshops/{created['id']}"
    headers = api.people.instructor.headers
    steps = api.patchable(created)
    # Two steps trade keys in one edit: only the end state must have each key once.
    steps[0]["key"], steps[1]["key"] = steps[1]["key"], steps[0]["key"]
    steps[0]["substeps"][0]["key"] = "install-tools"
    steps[1]["substeps"][0]["key"] = None
    response = await api.client.patch(url, json={"steps": steps}, headers=headers)
    assert response.status == 200, await response.text()
    updated = await response.json()
    assert [s["key"] for s in updated["steps"]] == ["deploy", "setup", None]
    assert updated["steps"][0]["substeps"][0]["key"] == "install-tools"
    assert updated["steps"][1]["substeps"][0]["key"] is None
    assert updated["version"] == 2
    unchanged = await api.client.patch(url, json={"steps": api.patchable(updated)}, headers=headers)
    assert (await unchanged.json())["version"] == 2
    assert await api.settle() == ["workshop.created", "workshop.updated"]


async def test_a_patch_with_repeated_keys_changes_nothing(api: WorkshopApi) -> None:
    created = await api.create(body={**api.body(), "steps": keyed_steps()})
    url = f"/workshops/{created['id']}"
    headers = api.people.instructor.headers
    steps = api.patchable(created)
    steps[2]["key"] = "setup"
    steps[0]["substeps"][1]["key"] = "install"
    response = await api.client.patch(url, json={"steps": steps}, headers=headers)
    assert response.status == 422
    fields = [e["field"] for e in (await response.json())["errors"]]
    assert fields == ["steps.0.substeps.1.key", "steps.2.key"]
    assert await (await api.client.get(url, headers=headers)).json() == created
