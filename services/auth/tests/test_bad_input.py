"""Bad input gets a 4xx problem naming the field, never a 500 and never a partial write."""

from __future__ import annotations

import io
from typing import Any

import pytest

VALID = {"email": "ok@example.com", "password": "correct horse battery staple", "full_name": "Ok"}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**VALID, "email": "not-an-email"}, 422, "email"),
        ({**VALID, "password": 12345678}, 422, "password"),
        ({**VALID, "full_name": ["a"]}, 422, "full_name"),
        ({**VALID, "full_name": "   "}, 422, "full_name"),
        ({**VALID, "full_name": "x" * 201}, 422, "full_name"),
        ({"email": "ok@example.com", "password": "correct horse battery staple"}, 422, "full_name"),
        ({**VALID, "is_admin": True}, 422, "is_admin"),
        ([VALID], 422, "body"),
    ],
)
async def test_invalid_registration_names_the_field(
    client: Any, body: Any, status: int, field: str
) -> None:
    response = await client.post("/auth/register", json=body)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["status"] == status
    assert field in [error["field"] for error in problem["errors"]]


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b'{"email": "ok@example.com", ', "application/json", 400),
        (b"\xff\xfe\x00garbage", "application/json", 400),
        ('{"email": "\udcff"}'.encode("utf-8", "surrogatepass"), "application/json", 400),
        (b"email=ok@example.com", "application/x-www-form-urlencoded", 415),
        (b"", "application/json", 400),
        (b"x" * (1024 * 1024 + 1), "application/json", 413),
    ],
)
async def test_malformed_bodies_are_4xx_problems(
    client: Any, data: bytes, content_type: str, status: int
) -> None:
    response = await client.post(
        "/auth/register", data=io.BytesIO(data), headers={"Content-Type": content_type}
    )
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert (await response.json())["status"] == status


async def test_refused_registration_writes_nothing(client: Any, api: Any) -> None:
    admin = api.bearer(await api.admin_token())
    await client.post("/auth/register", json={**VALID, "password": "password"})
    found = await (await client.get("/users?email=ok@example.com", headers=admin)).json()
    assert found["items"] == []


async def test_unknown_routes_and_methods_are_problems(client: Any) -> None:
    missing = await client.get("/no/such/route")
    assert missing.status == 404
    assert missing.content_type == "application/problem+json"
    method = await client.delete("/auth/login")
    assert method.status == 405
    assert method.headers["Allow"] == "POST"
    assert method.content_type == "application/problem+json"
