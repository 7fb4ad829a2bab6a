"""A machine client (the operator) finds the quizzes it made by the external_id it gave
them: one quiz per key and client, and no client sees another's keys."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

Headers = dict[str, str]

KEY = "cohorts/3f0c9a5e-0b7e-4e55-9a8e-1d2f3c4b5a69/quizzes/basics"


@pytest.fixture
def operator(identity: Any) -> Headers:
    return identity.machine_headers("operator")


async def create(api: Any, headers: Headers, **overrides: Any) -> Any:
    return await api.client.post("/quizzes", json=api.quiz_body(**overrides), headers=headers)


async def find(api: Any, headers: Headers, query: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"/quizzes?{query}", headers=headers)
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


async def test_a_client_finds_the_quiz_it_created_by_its_external_id(
    api: Any, operator: Headers
) -> None:
    workshop_id = str(uuid.uuid4())
    response = await create(api, operator, workshop_id=workshop_id, external_id=KEY)
    assert response.status == 201, await response.text()
    quiz = await response.json()
    assert quiz["external_id"] == KEY
    assert quiz["owner_id"] is None
    other = await create(api, operator, workshop_id=workshop_id, external_id=f"{KEY}-2")
    assert other.status == 201
    found = await find(api, operator, f"external_id={KEY}")
    assert [(q["id"], q["external_id"]) for q in found] == [(quiz["id"], KEY)]
    both = await find(api, operator, f"workshop_id={workshop_id}&external_id={KEY}")
    assert [q["id"] for q in both] == [quiz["id"]]
    assert await find(api, operator, f"workshop_id={uuid.uuid4()}&external_id={KEY}") == []
    assert len(await find(api, operator, f"workshop_id={workshop_id}")) == 2
    read = await (await api.client.get(f"/quizzes/{quiz['id']}", headers=operator)).json()
    assert read["external_id"] == KEY
    plain = await api.create_quiz(api.account("instructor-a", "instructor"))
    assert plain["external_id"] is None


async def test_a_second_quiz_with_the_key_is_a_conflict_and_writes_nothing(
    api: Any, operator: Headers
) -> None:
    first = await create(api, operator, external_id=KEY)
    again = await create(api, operator, external_id=KEY, title="Again")
    assert (first.status, again.status) == (201, 409)
    assert again.content_type == "application/problem+json"
    assert [e["field"] for e in (await again.json())["errors"]] == ["external_id"]
    admin = api.account("admin", "admin").headers
    assert [q["title"] for q in await find(api, admin, "")] == ["Kubernetes basics"]


async def test_concurrent_creates_with_one_key_make_one_quiz(api: Any, operator: Headers) -> None:
    responses = await asyncio.gather(*(create(api, operator, external_id=KEY) for _ in range(5)))
    assert sorted(r.status for r in responses) == [201, 409, 409, 409, 409]
    admin = api.account("admin", "admin").headers
    assert len(await find(api, admin, "")) == 1


async def test_each_client_sees_and_holds_only_its_own_keys(
    api: Any, operator: Headers, identity: Any
) -> None:
    admin = api.account("admin", "admin").headers
    other_client = identity.machine_headers()
    by_operator = await (await create(api, operator, external_id=KEY)).json()
    assert by_operator["id"] in [q["id"] for q in await find(api, admin, "")]
    assert await find(api, admin, f"external_id={KEY}") == []
    assert await find(api, other_client, f"external_id={KEY}") == []
    by_admin = await create(api, admin, external_id=KEY)
    by_other = await create(api, other_client, external_id=KEY)
    assert (by_admin.status, by_other.status) == (201, 201)
    for headers, mine in (
        (operator, by_operator),
        (admin, await by_admin.json()),
        (other_client, await by_other.json()),
    ):
        assert [q["id"] for q in await find(api, headers, f"external_id={KEY}")] == [mine["id"]]


async def test_the_external_id_cannot_be_patched(api: Any, operator: Headers) -> None:
    quiz = await (await create(api, operator, external_id=KEY)).json()
    url = f"/quizzes/{quiz['id']}"
    response = await api.client.patch(url, json={"external_id": "other"}, headers=operator)
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["external_id"]
    assert (await (await api.client.get(url, headers=operator)).json())["external_id"] == KEY


async def test_a_bad_external_id_query_is_422(api: Any, operator: Headers) -> None:
    for query in ("external_id=", f"external_id={'x' * 321}", "external_id=a%0Ab"):
        response = await api.client.get(f"/quizzes?{query}", headers=operator)
        assert response.status == 422, query
        assert [e["field"] for e in (await response.json())["errors"]] == ["external_id"]
