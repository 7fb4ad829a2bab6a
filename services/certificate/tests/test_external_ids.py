"""A machine client (the operator) finds the certificate templates it made by the
external_id it gave them: one template per key and client, and no client sees another's
keys."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

Headers = dict[str, str]

KEY = "cohorts/3f0c9a5e-0b7e-4e55-9a8e-1d2f3c4b5a69/certificate"


@pytest.fixture
def operator(identity: Any) -> Headers:
    return identity.machine_headers("operator")


def template(workshop_id: uuid.UUID, external_id: str | None = KEY) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workshop_id": str(workshop_id),
        "title": "Certificate of {workshop}",
        "body": "{name} completed {workshop}",
    }
    if external_id is not None:
        body["external_id"] = external_id
    return body


async def create(api: Any, headers: Headers, body: dict[str, Any]) -> Any:
    return await api.client.post("/templates", json=body, headers=headers)


async def find(api: Any, headers: Headers, query: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"/templates?{query}", headers=headers)
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


async def test_a_client_finds_the_template_it_created_by_its_external_id(
    api: Any, operator: Headers
) -> None:
    workshop_id = await api.new_workshop()
    response = await create(api, operator, template(workshop_id))
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["external_id"] == KEY
    other = await create(api, operator, template(await api.new_workshop(), f"{KEY}-2"))
    assert other.status == 201
    found = await find(api, operator, f"external_id={KEY}")
    assert found == [created]
    assert await find(api, operator, f"workshop_id={workshop_id}&external_id={KEY}") == [created]
    assert await find(api, operator, f"workshop_id={uuid.uuid4()}&external_id={KEY}") == []
    read = await api.client.get(f"/templates/{created['id']}", headers=operator)
    assert await read.json() == created
    plain = await api.create_template(api.account("admin", "admin"), await api.new_workshop())
    assert plain["external_id"] is None


async def test_a_second_template_with_the_key_is_a_conflict_naming_it(
    api: Any, operator: Headers
) -> None:
    first = await create(api, operator, template(await api.new_workshop()))
    assert first.status == 201
    again = await create(api, operator, template(await api.new_workshop()))
    assert again.status == 409
    assert again.content_type == "application/problem+json"
    assert [e["field"] for e in (await again.json())["errors"]] == ["external_id"]
    # The same workshop with another key is the other conflict: one template a workshop.
    workshop_id = (await first.json())["workshop_id"]
    taken = await create(api, operator, template(workshop_id, "cohorts/other"))
    assert taken.status == 409
    assert "errors" not in await taken.json()
    admin = api.account("admin", "admin").headers
    assert [t["id"] for t in await find(api, admin, "")] == [(await first.json())["id"]]


async def test_concurrent_creates_with_one_key_make_one_template(
    api: Any, operator: Headers
) -> None:
    workshops = [await api.new_workshop() for _ in range(5)]
    responses = await asyncio.gather(*(create(api, operator, template(w)) for w in workshops))
    assert sorted(r.status for r in responses) == [201, 409, 409, 409, 409]
    for refused in (r for r in responses if r.status == 409):
        assert [e["field"] for e in (await refused.json())["errors"]] == ["external_id"]
    admin = api.account("admin", "admin").headers
    assert len(await find(api, admin, "")) == 1


async def test_each_client_sees_and_holds_only_its_own_keys(
    api: Any, operator: Headers, identity: Any
) -> None:
    admin = api.account("admin", "admin").headers
    other_client = identity.machine_headers()
    by_operator = await (await create(api, operator, template(await api.new_workshop()))).json()
    assert by_operator in await find(api, admin, "")
    assert await find(api, admin, f"external_id={KEY}") == []
    assert await find(api, other_client, f"external_id={KEY}") == []
    by_admin = await create(api, admin, template(await api.new_workshop()))
    by_other = await create(api, other_client, template(await api.new_workshop()))
    assert (by_admin.status, by_other.status) == (201, 201)
    for headers, mine in (
        (operator, by_operator),
        (admin, await by_admin.json()),
        (other_client, await by_other.json()),
    ):
        assert await find(api, headers, f"external_id={KEY}") == [mine]


async def test_the_external_id_cannot_be_patched(api: Any, operator: Headers) -> None:
    created = await (await create(api, operator, template(await api.new_workshop()))).json()
    url = f"/templates/{created['id']}"
    response = await api.client.patch(url, json={"external_id": "other"}, headers=operator)
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["external_id"]
    assert (await (await api.client.get(url, headers=operator)).json())["external_id"] == KEY
