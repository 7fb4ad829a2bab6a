"""Bad input: a 4xx problem naming the field, never a 500, never a partial write."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

PROBLEM = "application/problem+json"


def _template(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workshop_id": str(uuid.uuid4()),
        "title": "Certificate",
        "body": "{name} did it",
        "criteria": {"min_completion_percent": 80},
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_template(criteria={"min_completion_percent": 101}), "criteria.min_completion_percent"),
        (_template(criteria={"min_completion_percent": -1}), "criteria.min_completion_percent"),
        (_template(criteria={"min_completion_percent": "lots"}), "criteria.min_completion_percent"),
        (_template(criteria={"min_quiz_average": 100.5}), "criteria.min_quiz_average"),
        (_template(criteria={"required_quiz_ids": ["not-a-uuid"]}), "criteria.required_quiz_ids.0"),
        (
            _template(criteria={"required_quiz_ids": [str(uuid.UUID(int=1))] * 2}),
            "criteria.required_quiz_ids",
        ),
        (_template(criteria={"min_completion_percent": 50, "bonus": 1}), "criteria.bonus"),
        (_template(workshop_id="42"), "workshop_id"),
        (_template(title=""), "title"),
        (_template(title="x" * 201), "title"),
        (_template(body="Dear {student}"), "body"),
        (_template(body="{name.__class__}"), "body"),
        (_template(body="nul\x00"), "body"),
        (_template(external_id=""), "external_id"),
        (_template(external_id="x" * 321), "external_id"),
        (_template(external_id="a\tb"), "external_id"),
    ],
)
async def test_bad_templates_name_the_field(api: Any, body: dict[str, Any], field: str) -> None:
    admin = api.account("admin", "admin")
    response = await api.client.post("/templates", json=body, headers=admin.headers)
    assert response.status == 422, await response.text()
    assert response.content_type == PROBLEM
    problem = await response.json()
    assert field in [error["field"] for error in problem["errors"]]
    listed = await api.client.get("/templates", headers=admin.headers)
    assert (await listed.json())["items"] == []  # nothing written


async def test_bad_requests_are_4xx(api: Any) -> None:
    admin = api.account("admin", "admin")
    h = admin.headers
    unknown = uuid.uuid4()
    cases = [
        (
            "POST",
            "/templates",
            {"data": b"{", "headers": {**h, "Content-Type": "application/json"}},
            400,
        ),
        ("POST", "/templates", {"data": b"x", "headers": {**h, "Content-Type": "text/plain"}}, 415),
        ("GET", f"/templates/{unknown}", {"headers": h}, 404),
        ("GET", "/templates/not-a-uuid", {"headers": h}, 404),
        ("PATCH", f"/templates/{unknown}", {"json": {"title": "T"}, "headers": h}, 404),
        ("GET", f"/certificates/{unknown}", {"headers": h}, 404),
        ("GET", f"/certificates/{unknown}.pdf", {"headers": h}, 404),
        ("GET", f"/certificates/{unknown}/credential", {"headers": h}, 404),
        ("GET", "/certificates/nope.pdf", {"headers": h}, 404),
        ("POST", f"/certificates/{unknown}/revoke", {"json": {"reason": "r"}, "headers": h}, 404),
        ("GET", "/certificates?cursor=zzz", {"headers": h}, 422),
        ("GET", "/certificates?user_id=me", {"headers": h}, 422),
        ("GET", "/certificates?limit=0", {"headers": h}, 422),
        ("GET", "/templates?cursor=zzz", {"headers": h}, 422),
        ("GET", "/templates?external_id=", {"headers": h}, 422),
        ("GET", "/keys/not-a-key", {}, 404),
        ("GET", "/verify/", {}, 404),
    ]
    for method, path, kwargs, status in cases:
        response = await api.client.request(method, path, **kwargs)
        assert response.status == status, (method, path, await response.text())
        assert response.content_type == PROBLEM, (method, path)


async def test_bad_patch_and_revoke_bodies(api: Any) -> None:
    admin = api.account("admin", "admin")
    student = api.account("bad-input-student")
    workshop_id = await api.new_workshop()
    facts = api.facts(workshop_id)
    template = await api.create_template(admin, workshop_id, min_completion_percent=100)
    await api.publish_and_wait(facts.completed(student.id))
    [certificate] = await api.certificates(admin, workshop_id=str(workshop_id))

    t = f"/templates/{template['id']}"
    for body, field in (
        ({"title": None}, "title"),
        ({"criteria": None}, "criteria"),
        ({"criteria": {"min_quiz_average": 200}}, "criteria.min_quiz_average"),
        ({"body": "{date} {when}"}, "body"),
    ):
        response = await api.client.patch(t, json=body, headers=admin.headers)
        assert response.status == 422, await response.text()
        assert field in [e["field"] for e in (await response.json())["errors"]]
    after = await (await api.client.get(t, headers=admin.headers)).json()
    assert after == template  # unchanged

    r = f"/certificates/{certificate['id']}/revoke"
    for body, field in (
        ({}, "reason"),
        ({"reason": "  "}, "reason"),
        ({"reason": "x" * 501}, "reason"),
    ):
        response = await api.client.post(r, json=body, headers=admin.headers)
        assert response.status == 422, await response.text()
        assert field in [e["field"] for e in (await response.json())["errors"]]
    got = await (
        await api.client.get(f"/certificates/{certificate['id']}", headers=admin.headers)
    ).json()
    assert got["status"] == "valid"

    # A second template for the same workshop is a conflict; the first stays.
    response = await api.client.post(
        "/templates", json=_template(workshop_id=str(workshop_id)), headers=admin.headers
    )
    assert response.status == 409


async def test_a_template_for_a_workshop_that_does_not_exist_is_refused(
    api: Any, settings: Any, aiohttp_client: Any
) -> None:
    """Not heard of here, the workshop is looked up at the workshop service: one that does
    not exist is a 422 naming `workshop_id`, and nothing is written; when the workshop
    service cannot say, a 503 and nothing written either."""
    admin = api.account("admin", "admin")
    missing = await api.client.post("/templates", json=_template(), headers=admin.headers)
    assert missing.status == 422, await missing.text()
    problem = await missing.json()
    assert problem["errors"] == [{"field": "workshop_id", "reason": "no such workshop"}]
    assert (await (await api.client.get("/templates", headers=admin.headers)).json())["items"] == []
    existing = await api.new_workshop()  # at the workshop service, not heard of here
    created = await api.client.post(
        "/templates", json=_template(workshop_id=str(existing)), headers=admin.headers
    )
    assert created.status == 201, await created.text()

    from sukverse_certificate.app import create_app

    cut_off = await aiohttp_client(
        create_app(settings.model_copy(update={"workshop_url": "http://127.0.0.1:9"}))
    )
    unsure = await cut_off.post(
        "/templates", json=_template(workshop_id=str(uuid.uuid4())), headers=admin.headers
    )
    assert unsure.status == 503, await unsure.text()
    assert unsure.content_type == PROBLEM
    listed = await cut_off.get("/templates", headers=admin.headers)
    assert [t["workshop_id"] for t in (await listed.json())["items"]] == [str(existing)]
