"""Accounts created for someone else without a password, and the one-time token that sets it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sukverse_common.events.envelope import CloudEvent

NEW_PASSWORD = "a brand new passphrase for tests"


async def operator_headers(client: Any, api: Any) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": "operator",
        "client_secret": api.operator_secret,
    }
    response = await client.post("/auth/token", data=form)
    assert response.status == 200, await response.text()
    return api.bearer((await response.json())["access_token"])


async def create(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return await client.post("/users", json=body, headers=headers)


async def test_a_service_creates_an_account_whose_owner_sets_the_password_once(
    client: Any, api: Any, published: list[CloudEvent]
) -> None:
    service = await operator_headers(client, api)
    response = await create(
        client, service, email="New.User@Example.com", full_name="New User", roles=["instructor"]
    )
    assert response.status == 201, await response.text()
    user = await response.json()
    assert user["email"] == "new.user@example.com"
    assert user["roles"] == ["instructor"]
    token = user["set_password_token"]
    assert user["set_password_expires_at"] > user["created_at"]

    # No password works before it is set, not even an empty or guessed one.
    for guess in ("", "!unset:", token):
        login = await client.post("/auth/login", json={"email": user["email"], "password": guess})
        assert login.status in (401, 422)
    # The token is not an access token.
    me = await client.get("/auth/me", headers=api.bearer(token))
    assert me.status == 401

    weak = await client.post("/auth/password", json={"token": token, "password": "password"})
    assert weak.status == 422
    done = await client.post("/auth/password", json={"token": token, "password": NEW_PASSWORD})
    assert done.status == 204
    assert (await api.login(user["email"], NEW_PASSWORD))["access_token"]
    again = await client.post("/auth/password", json={"token": token, "password": NEW_PASSWORD})
    assert again.status == 400  # one time only

    deadline = time.monotonic() + 10
    while not any(
        e.type.endswith("user.registered.v1") and e.subject == user["id"] for e in published
    ):
        assert time.monotonic() < deadline, "no user.registered event"
        await asyncio.sleep(0.02)
    [registered] = [e for e in published if e.subject == user["id"]]
    assert registered.data["roles"] == ["instructor"]
    assert token not in registered.model_dump_json()


async def test_creating_an_existing_or_bad_account_is_refused(client: Any, api: Any) -> None:
    service = await operator_headers(client, api)
    await api.register("taken@example.com")
    taken = await create(client, service, email="TAKEN@example.com", full_name="Someone")
    assert taken.status == 409
    unknown = await create(client, service, email="a@example.com", full_name="A", roles=["wizard"])
    assert unknown.status == 422
    assert (await unknown.json())["errors"][0]["field"] == "roles"
    bad = await create(client, service, email="not-an-email", full_name="A")
    assert bad.status == 422
    found = await (await client.get("/users?email=a@example.com", headers=service)).json()
    assert found["items"] == []


async def test_only_holders_of_users_write_create_accounts(client: Any, api: Any) -> None:
    await api.register("plain@example.com")
    student = api.bearer(await api.token("plain@example.com"))
    assert (await create(client, student, email="x@example.com", full_name="X")).status == 403
    assert (await create(client, {}, email="x@example.com", full_name="X")).status == 401
    admin = api.bearer(await api.admin_token())
    assert (await create(client, admin, email="x@example.com", full_name="X")).status == 201


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
async def test_a_forged_set_password_token_is_refused(client: Any, token: str) -> None:
    response = await client.post("/auth/password", json={"token": token, "password": NEW_PASSWORD})
    assert response.status in (400, 422)
    assert response.content_type == "application/problem+json"


async def test_a_lost_set_password_token_is_reissued_and_the_old_one_stops_working(
    client: Any, api: Any
) -> None:
    """An account whose token was lost (an interrupted import) gets a new one; the first
    stops working. An account with a password gets none, and an admin account's needs
    `roles:write`, which the operator lacks."""
    service = await operator_headers(client, api)
    user = await (
        await create(client, service, email="lost@example.com", full_name="Lost", roles=["student"])
    ).json()
    reissue = f"/users/{user['id']}/password-token"
    response = await client.post(reissue, headers=service)
    assert response.status == 200, await response.text()
    fresh = await response.json()
    assert fresh["set_password_token"] != user["set_password_token"]
    assert fresh["set_password_expires_at"] > user["created_at"]
    old = await client.post(
        "/auth/password", json={"token": user["set_password_token"], "password": NEW_PASSWORD}
    )
    assert old.status == 400
    done = await client.post(
        "/auth/password", json={"token": fresh["set_password_token"], "password": NEW_PASSWORD}
    )
    assert done.status == 204
    assert (await client.post(reissue, headers=service)).status == 409  # it has a password now

    admin = api.bearer(await api.admin_token())
    boss = await (
        await create(client, admin, email="boss@example.com", full_name="Boss", roles=["admin"])
    ).json()
    boss_token = f"/users/{boss['id']}/password-token"
    assert (await client.post(boss_token, headers=service)).status == 403
    assert (await client.post(boss_token, headers=admin)).status == 200
    student = api.bearer((await api.login("lost@example.com", NEW_PASSWORD))["access_token"])
    assert (await client.post(reissue, headers=student)).status == 403
    missing = "/users/00000000-0000-4000-8000-000000000000/password-token"
    assert (await client.post(missing, headers=admin)).status == 404
