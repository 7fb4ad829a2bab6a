"""Roles, permissions, user look-up and the bootstrap admin, through HTTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sukverse_auth.app import GENERATED_ADMIN_EMAIL, MIGRATIONS, create_app
from sukverse_auth.settings import AuthSettings
from sukverse_common import db
from sukverse_common.events.envelope import CloudEvent


async def test_admin_defines_a_role_and_assigns_it(
    client: Any, api: Any, published: list[CloudEvent]
) -> None:
    admin = api.bearer(await api.admin_token())
    permissions = await (await client.get("/permissions", headers=admin)).json()
    assert {"workshop:write", "roles:assign"} <= {p["name"] for p in permissions["items"]}

    response = await client.post(
        "/roles",
        json={"name": "reviewer", "description": "Reads quizzes", "permissions": ["quiz:read"]},
        headers=admin,
    )
    assert response.status == 201
    assert (await response.json())["permissions"] == ["quiz:read"]
    again = await client.post("/roles", json={"name": "reviewer", "permissions": []}, headers=admin)
    assert again.status == 409
    bogus = await client.post(
        "/roles", json={"name": "bogus", "permissions": ["root:everything"]}, headers=admin
    )
    assert bogus.status == 422
    assert (await bogus.json())["errors"][0]["field"] == "permissions"

    user = await api.register("rev@example.com")
    response = await client.put(
        f"/users/{user['id']}/roles", json={"roles": ["reviewer", "student"]}, headers=admin
    )
    assert response.status == 200
    assert (await response.json())["roles"] == ["reviewer", "student"]
    me = await (
        await client.get("/auth/me", headers=api.bearer(await api.token("rev@example.com")))
    ).json()
    assert "quiz:read" in me["scope"]

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        e.type.endswith("roles_changed.v1") for e in published
    ):
        await asyncio.sleep(0.02)
    changed = [e for e in published if e.type == "io.sukverse.auth.user.roles_changed.v1"]
    assert len(changed) == 1
    assert changed[0].data["roles"] == ["reviewer", "student"]
    assert changed[0].data["previous_roles"] == ["student"]

    # The same roles again change nothing and publish nothing.
    await client.put(
        f"/users/{user['id']}/roles", json={"roles": ["student", "reviewer"]}, headers=admin
    )
    await asyncio.sleep(0.2)
    assert len([e for e in published if e.type.endswith("roles_changed.v1")]) == 1


async def test_students_cannot_administer(client: Any, api: Any) -> None:
    user = await api.register("stu@example.com")
    student = api.bearer(await api.token("stu@example.com"))
    for method, path, body in (
        ("GET", "/users", None),
        ("GET", f"/users/{user['id']}", None),
        ("GET", "/roles", None),
        ("POST", "/roles", {"name": "mine", "permissions": []}),
        ("GET", "/permissions", None),
        ("PUT", f"/users/{user['id']}/roles", {"roles": ["admin"]}),
    ):
        response = await client.request(method, path, json=body, headers=student)
        assert response.status == 403, (method, path)
        assert response.content_type == "application/problem+json"
    anonymous = await client.get("/users")
    assert anonymous.status == 401


async def test_unknown_roles_and_users_and_the_last_admin(client: Any, api: Any) -> None:
    admin = api.bearer(await api.admin_token())
    user = await api.register("x1@example.com")
    response = await client.put(
        f"/users/{user['id']}/roles", json={"roles": ["wizard"]}, headers=admin
    )
    assert response.status == 422
    missing = "00000000-0000-4000-8000-000000000000"
    response = await client.put(
        f"/users/{missing}/roles", json={"roles": ["student"]}, headers=admin
    )
    assert response.status == 404
    assert (await client.get("/users/not-a-uuid", headers=admin)).status == 404

    me = await (await client.get("/auth/me", headers=admin)).json()
    response = await client.put(
        f"/users/{me['id']}/roles", json={"roles": ["student"]}, headers=admin
    )
    assert response.status == 409


async def test_user_lookup_by_email_and_paging(client: Any, api: Any) -> None:
    admin = api.bearer(await api.admin_token())
    for i in range(5):
        await api.register(f"page{i}@example.com")
    found = await (await client.get("/users?email=PAGE3@example.com", headers=admin)).json()
    assert [u["email"] for u in found["items"]] == ["page3@example.com"]

    seen: list[str] = []
    cursor = None
    while True:
        query = "/users?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(query, headers=admin)).json()
        assert len(page["items"]) <= 2
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6  # five students and the admin
    bad = await client.get("/users?limit=0", headers=admin)
    assert bad.status == 422
    assert (await bad.json())["errors"][0]["field"] == "limit"


@pytest.mark.parametrize("database", ["new", "migrated without an admin"])
async def test_embedded_mode_generates_an_admin_once_and_prints_it(
    aiohttp_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], database: str
) -> None:
    """On a new database the admin's password is hashed while it migrates; on one that
    exists, after: either way it is printed and logs in."""
    settings = AuthSettings(data_dir=tmp_path)
    if database != "new":
        await db.upgrade(settings.effective_database_url, MIGRATIONS)
    client = await aiohttp_client(create_app(settings))
    printed = capsys.readouterr().err
    assert GENERATED_ADMIN_EMAIL in printed
    password = printed.split("password:")[1].split()[0]
    response = await client.post(
        "/auth/login", json={"email": GENERATED_ADMIN_EMAIL, "password": password}
    )
    assert response.status == 200
    await client.close()

    again = await aiohttp_client(create_app(settings))
    assert GENERATED_ADMIN_EMAIL not in capsys.readouterr().err
    await again.close()


async def test_a_weak_bootstrap_password_stops_the_start(tmp_path: Path) -> None:
    settings = AuthSettings(data_dir=tmp_path, admin_email="a@example.com", admin_password="admin")
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(RuntimeError, match="SUKVERSE_ADMIN_PASSWORD is refused"):
            await runner.setup()
    finally:
        await runner.cleanup()


async def test_an_admin_disables_an_account_and_enables_it_again(
    client: Any, api: Any, published: list[CloudEvent]
) -> None:
    """Disabled, an account cannot log in or refresh, its own token is refused by auth, and
    the change is an event; enabled again, it logs in. The last active admin stays."""
    admin = api.bearer(await api.admin_token())
    user = await api.register("dis@example.com")
    pair = await api.login("dis@example.com")
    status = f"/users/{user['id']}/status"

    student = api.bearer(pair["access_token"])
    refused = await client.put(status, json={"active": False}, headers=student)
    assert refused.status == 403  # students, instructors: not theirs to do
    instructor = await api.register("teach@example.com")
    await client.put(
        f"/users/{instructor['id']}/roles", json={"roles": ["instructor"]}, headers=admin
    )
    teacher = api.bearer(await api.token("teach@example.com"))
    assert (await client.put(status, json={"active": False}, headers=teacher)).status == 403

    response = await client.put(status, json={"active": False}, headers=admin)
    assert response.status == 200, await response.text()
    assert (await response.json())["active"] is False
    login = await client.post(
        "/auth/login", json={"email": "dis@example.com", "password": api.password}
    )
    assert login.status == 401
    refresh = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refresh.status == 401
    me = await client.get("/auth/me", headers=student)
    assert me.status == 401  # the account is disabled, or its tokens revoked already
    listed = await (await client.get(f"/users/{user['id']}", headers=admin)).json()
    assert listed["active"] is False

    assert (await client.put(status, json={"active": True}, headers=admin)).status == 200
    again = await api.login("dis@example.com")
    assert (await client.get("/auth/me", headers=api.bearer(again["access_token"]))).status == 200
    # The ended session stays ended: enabling does not bring its tokens back.
    refresh = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refresh.status == 401
    deadline = time.monotonic() + 5
    while (old := await client.get("/auth/me", headers=student)).status != 401:
        assert time.monotonic() < deadline, "the disabled account's token works again"
        await asyncio.sleep(0.05)
    assert "revoked" in (await old.json())["detail"]

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        len([e for e in published if e.type.endswith("status_changed.v1")]) < 2
    ):
        await asyncio.sleep(0.02)
    changes = [e.data for e in published if e.type == "io.sukverse.auth.user.status_changed.v1"]
    assert [(c["user_id"], c["active"]) for c in changes] == [
        (user["id"], False),
        (user["id"], True),
    ]
    # The same status again changes nothing and publishes nothing.
    assert (await client.put(status, json={"active": True}, headers=admin)).status == 200
    await asyncio.sleep(0.2)
    assert len([e for e in published if e.type.endswith("status_changed.v1")]) == 2

    me = await (await client.get("/auth/me", headers=admin)).json()
    last = await client.put(f"/users/{me['id']}/status", json={"active": False}, headers=admin)
    assert last.status == 409
    missing = "00000000-0000-4000-8000-000000000000"
    gone = await client.put(f"/users/{missing}/status", json={"active": False}, headers=admin)
    assert gone.status == 404
    loose = await client.put(status, json={"active": "false"}, headers=admin)
    assert loose.status == 422
    assert (await loose.json())["errors"][0]["field"] == "active"


async def test_no_one_locks_themselves_out_and_only_role_administrators_touch_admins(
    client: Any, api: Any
) -> None:
    """One's own roles and one's own account cannot be changed or disabled (409: another
    administrator does it); a user administrator without `roles:write` may disable
    students but neither an admin nor, through roles, make or unmake one."""
    admin = api.bearer(await api.admin_token())
    me = await (await client.get("/auth/me", headers=admin)).json()
    own = await client.put(f"/users/{me['id']}/roles", json={"roles": ["admin"]}, headers=admin)
    assert own.status == 409 and "your own roles" in (await own.json())["detail"]
    off = await client.put(f"/users/{me['id']}/status", json={"active": False}, headers=admin)
    assert off.status == 409 and "your own account" in (await off.json())["detail"]

    permissions = ["users:read", "users:write", "users:disable", "roles:assign"]
    role = {"name": "accounts", "permissions": permissions}
    assert (await client.post("/roles", json=role, headers=admin)).status == 201
    keeper = await api.register("keeper@example.com")
    await client.put(f"/users/{keeper['id']}/roles", json={"roles": ["accounts"]}, headers=admin)
    accounts = api.bearer(await api.token("keeper@example.com"))
    second = await api.register("second-admin@example.com")
    await client.put(f"/users/{second['id']}/roles", json={"roles": ["admin"]}, headers=admin)
    student = await api.register("plain@example.com")

    refused = await client.put(
        f"/users/{second['id']}/status", json={"active": False}, headers=accounts
    )
    assert refused.status == 403
    assert "needs 'roles:write'" in (await refused.json())["detail"]
    demoted = await client.put(
        f"/users/{second['id']}/roles", json={"roles": ["student"]}, headers=accounts
    )
    assert demoted.status == 403
    disabled = await client.put(
        f"/users/{student['id']}/status", json={"active": False}, headers=accounts
    )
    assert disabled.status == 200, await disabled.text()
    still = await (await client.get(f"/users/{second['id']}", headers=admin)).json()
    assert still["active"] is True and still["roles"] == ["admin"]
