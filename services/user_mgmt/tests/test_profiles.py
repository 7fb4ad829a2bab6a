"""Profiles kept in step with auth's events, edited, searched, and roles changed through auth."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import event

from sukverse_common.events.bus import InMemoryBus
from sukverse_common.events.contracts import UserRegistered, UserRolesChanged
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.inbox import InboxDispatcher
from sukverse_common.keys import DATABASE, OUTBOX
from sukverse_common.metrics import Metrics
from sukverse_user_mgmt.authclient import AuthClient, AuthUnavailable
from sukverse_user_mgmt.events import consumer
from sukverse_user_mgmt.models import messaging
from sukverse_user_mgmt.settings import UserMgmtSettings


async def test_a_registration_creates_a_profile_named_after_the_user(api: Any) -> None:
    student = api.account("profile-new")
    await api.registered(student, full_name="Ada Lovelace")
    profile = await (await api.get(student.id, student)).json()
    assert profile["id"] == profile["user_id"] == str(student.id)
    assert profile["email"] == student.email
    assert profile["full_name"] == profile["display_name"] == "Ada Lovelace"
    assert profile["roles"] == ["student"]
    assert profile["locale"] is profile["time_zone"] is profile["bio"] is None


async def test_a_roles_change_before_the_registration_is_kept(api: Any) -> None:
    user_id = uuid.uuid4()
    await api.roles_changed(user_id, ["instructor", "student"])
    early = await api.wait_for(user_id, lambda p: p["roles"] == ["instructor", "student"])
    assert early["email"] is None
    registered = UserRegistered(
        user_id=user_id,
        email="late@example.com",
        full_name="Late Arrival",
        roles=["student"],
        registered_at=datetime.now(UTC),
    )
    await api.publish(registered)
    profile = await api.wait_for(user_id, lambda p: p["email"] == "late@example.com")
    assert profile["roles"] == ["instructor", "student"]  # the newer change stays
    assert profile["display_name"] == "Late Arrival"


async def test_a_redelivered_event_has_no_second_effect(api: Any) -> None:
    student = api.account("profile-redelivered")
    data = await api.registered(student, full_name="Grace Hopper")
    await api.patch(student.id, {"display_name": "Amazing Grace"}, student)
    # The same event again (same id), and a registration replayed with a new id.
    await api.publish(data, CloudEvent.wrap(data, subject=str(student.id)))
    await api.roles_changed(student.id, ["student"])
    await api.wait_for(student.id, lambda p: p["roles"] == ["student"])
    profile = await (await api.get(student.id)).json()
    assert profile["display_name"] == "Amazing Grace"
    assert profile["full_name"] == "Grace Hopper"


async def test_a_user_edits_their_own_display_fields(api: Any) -> None:
    student = api.account("profile-editor")
    await api.registered(student, full_name="Alan Turing")
    changed = await api.patch(
        student.id,
        {
            "display_name": "  Alan  ",
            "organisation": "Bletchley Park",
            "locale": "en-gb",
            "time_zone": "Europe/London",
            "avatar_url": "https://example.com/a.png",
            "bio": "Codebreaker.",
        },
        student,
    )
    assert changed["display_name"] == "Alan"
    assert changed["locale"] == "en-GB"
    assert changed["time_zone"] == "Europe/London"
    assert changed["updated_at"] > changed["created_at"]
    cleared = await api.patch(student.id, {"display_name": None, "bio": None}, student)
    assert cleared["display_name"] == "Alan Turing"  # back to the full name
    assert cleared["bio"] is None
    assert cleared["organisation"] == "Bletchley Park"  # left out, so kept


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"locale": "english"}, "locale"),
        ({"locale": "en_GB"}, "locale"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"avatar_url": "http://example.com/a.png"}, "avatar_url"),
        ({"avatar_url": "https://user:pw@example.com/a.png"}, "avatar_url"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"display_name": "x" * 201}, "display_name"),
        ({"display_name": "   "}, "display_name"),
        ({"organisation": "o" * 201}, "organisation"),
        ({"bio": "b" * 5001}, "bio"),
        ({"bio": "nul\x00"}, "bio"),
        ({"email": "new@example.com"}, "email"),
    ],
)
async def test_bad_profile_fields_are_refused_and_change_nothing(
    api: Any, body: dict[str, Any], field: str
) -> None:
    student = api.account("profile-bad-input")
    await api.registered(student, full_name="Bad Input")
    before = await (await api.get(student.id)).json()
    refused = await api.patch(student.id, {"bio": "kept", **body}, student, status=422)
    assert [error["field"] for error in refused["errors"]] == [field]
    assert await (await api.get(student.id)).json() == before


async def test_admins_search_by_email_or_name_prefix_and_role(api: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    people = {
        "zed": api.account(f"zed{tag}"),
        "zoe": api.account(f"zoe{tag}"),
        "yan": api.account(f"yan{tag}", "instructor"),
    }
    for name, account in people.items():
        await api.registered(account, full_name=f"{name.title()} {tag.upper()} Example")
    headers = api.admin.headers

    async def search(**query: str) -> list[str]:
        response = await api.client.get("/profiles", params=query, headers=headers)
        assert response.status == 200, await response.text()
        return [item["email"] for item in (await response.json())["items"]]

    assert sorted(await search(q=f"ZED{tag}".upper())) == [people["zed"].email]
    assert sorted(await search(q=f"Zoe {tag}")) == [people["zoe"].email]
    assert sorted(await search(q=f"z{tag}")) == []
    assert await search(q=f"yan{tag}", role="instructor") == [people["yan"].email]
    assert await search(q=f"yan{tag}", role="student") == []
    assert await search(q="%") == [] and await search(q="_") == []

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1", "q": "z"}
        if cursor:
            params["cursor"] = cursor
        page = await (await api.client.get("/profiles", params=params, headers=headers)).json()
        seen += [item["email"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {people["zed"].email, people["zoe"].email} <= set(seen)
    assert len(seen) == len(set(seen))
    bad = await api.client.get("/profiles", params={"cursor": "nope"}, headers=headers)
    assert bad.status == 422


async def test_roles_are_changed_through_auth(api: Any, service_headers: dict[str, str]) -> None:
    student = api.account("profile-promoted")
    await api.registered(student)
    response = await api.client.put(
        f"/profiles/{student.id}/roles",
        json={"roles": ["instructor", "student"]},
        headers=api.admin.headers,
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["roles"] == ["instructor", "student"]
    # The auth service holds the change.
    async with aiohttp.ClientSession() as session:
        url = f"{api.identity.url}/users/{student.id}"
        async with session.get(url, headers=service_headers) as answer:
            assert (await answer.json())["roles"] == ["instructor", "student"]


async def test_ones_own_roles_are_not_changed_through_this_service(api: Any) -> None:
    """As at auth: another administrator changes them (this service calls auth with its
    own token, so it checks the caller itself)."""
    response = await api.client.put(
        f"/profiles/{api.admin.id}/roles", json={"roles": ["student"]}, headers=api.admin.headers
    )
    assert response.status == 409, await response.text()
    assert "your own roles" in (await response.json())["detail"]


async def test_an_administrative_role_is_given_at_auth_not_through_this_service(
    api: Any,
) -> None:
    """This service changes roles with its own machine token, which may give students and
    instructors their roles but no administrative one, whoever asks it: that takes
    `roles:write` at auth itself. The refusal is auth's 403 with its reason."""
    student = api.account("profile-not-admin")
    await api.registered(student)
    response = await api.client.put(
        f"/profiles/{student.id}/roles", json={"roles": ["admin"]}, headers=api.admin.headers
    )
    assert response.status == 403, await response.text()
    assert "needs 'roles:write'" in (await response.json())["detail"]


@pytest.mark.parametrize(
    ("roles", "status", "field"),
    [(["wizard"], 422, "roles"), (["Not A Role!"], 422, "roles.0")],
)
async def test_an_unknown_role_is_refused(
    api: Any, roles: list[str], status: int, field: str
) -> None:
    student = api.account("profile-wizard")
    await api.registered(student)
    response = await api.client.put(
        f"/profiles/{student.id}/roles", json={"roles": roles}, headers=api.admin.headers
    )
    assert response.status == status
    problem = await response.json()
    assert [error["field"] for error in problem["errors"]] == [field]
    assert (await (await api.get(student.id)).json())["roles"] == ["student"]


async def test_roles_of_an_unknown_user_are_not_found(api: Any) -> None:
    response = await api.client.put(
        f"/profiles/{uuid.uuid4()}/roles", json={"roles": ["student"]}, headers=api.admin.headers
    )
    assert response.status == 404
    assert response.content_type == "application/problem+json"


async def test_auth_refusing_the_credentials_is_unavailable(
    settings: UserMgmtSettings, api: Any
) -> None:
    wrong = settings.model_copy(update={"auth_client_secret": SecretStr("wrong")})
    async with aiohttp.ClientSession() as session:
        client = AuthClient(wrong, session)
        with pytest.raises(AuthUnavailable):
            await client.set_roles(uuid.uuid4(), ["student"])


async def test_auth_down_is_unavailable(settings: UserMgmtSettings) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = settings.model_copy(update={"auth_url": f"http://127.0.0.1:{port}"})
    async with aiohttp.ClientSession() as session:
        client = AuthClient(down, session)
        with pytest.raises(AuthUnavailable) as raised:
            await client.set_roles(uuid.uuid4(), ["student"])
    assert raised.value.status == 503


async def test_a_batch_of_events_reads_its_profiles_once_not_per_event(api: Any) -> None:
    """Forty users' role changes, then their registrations: each batch's profiles come in
    one read, and a batch with two events for one user still makes one profile."""
    database = api.client.app[DATABASE]
    dispatcher = InboxDispatcher(
        consumer=consumer,
        database=database,
        inbox=messaging.inbox,
        outbox=api.client.app[OUTBOX],
        bus=InMemoryBus(),
        metrics=Metrics("test"),
    )
    users = [uuid.uuid4() for _ in range(40)]
    now = datetime.now(UTC)
    changes = [
        UserRolesChanged(user_id=u, roles=["student"], previous_roles=[], changed_by=None)
        for u in users
    ]
    registrations = [
        UserRegistered(
            user_id=u, email=f"{u.hex[:8]}@example.com", full_name="X", roles=[], registered_at=now
        )
        for u in users
    ]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        await dispatcher.handle([CloudEvent.wrap(d, subject=str(d.user_id)) for d in changes])
        statements.clear()
        await dispatcher.handle(
            [CloudEvent.wrap(d, subject=str(d.user_id)) for d in registrations[:20]]
            + [CloudEvent.wrap(registrations[0], subject=str(users[0]))]  # again, new id
            + [CloudEvent.wrap(d, subject=str(d.user_id)) for d in registrations[20:]]
        )
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", count)
    reads = [s for s in statements if s.lstrip().startswith("SELECT") and "FROM profile" in s]
    assert len(reads) <= 3, reads  # profiles, their roles; never one per event
    for user_id in (users[0], users[39]):
        profile = await (await api.get(user_id)).json()
        assert (profile["email"], profile["roles"]) == (
            f"{user_id.hex[:8]}@example.com",
            ["student"],
        )


async def test_role_names_follow_auths_rule(api: Any) -> None:
    """One definition of a role name (common's RoleName): what auth would refuse, user_mgmt
    refuses itself, naming the field, before any call to auth."""
    student = api.account("profile-role-names")
    await api.registered(student)
    for bad in ("x", "a" * 41, "Instructor", "9lives"):
        response = await api.client.put(
            f"/profiles/{student.id}/roles", json={"roles": [bad]}, headers=api.admin.headers
        )
        assert response.status == 422, bad
        problem = await response.json()
        assert "roles" in json.dumps(problem), problem
    document = await (await api.client.get("/openapi.json")).json()
    pattern = document["components"]["schemas"]["RolesIn"]["properties"]["roles"]["items"]
    assert pattern["pattern"] == "^[a-z][a-z0-9_-]{1,39}$"


async def test_the_schema_publishes_the_formats_the_service_checks(api: Any) -> None:
    """What the schema allows of locale and avatar URL, the service checks further; a value
    the schema's own pattern refuses, the service refuses too. Time zones are listed: the
    schema's names are exactly those the service takes."""
    import re

    from sukverse_user_mgmt.domain import check_time_zone

    document = await (await api.client.get("/openapi.json")).json()
    patch = document["components"]["schemas"]["ProfilePatch"]["properties"]

    def schema_of(field: str) -> dict[str, Any]:
        found: dict[str, Any] = next(
            (s for s in patch[field].get("anyOf", [patch[field]]) if s.get("type") == "string"),
            patch[field],
        )
        return found

    locale, zone, avatar = schema_of("locale"), schema_of("time_zone"), schema_of("avatar_url")
    assert avatar["format"] == "uri" and avatar["maxLength"] == 2048
    assert locale["maxLength"] == 35
    for good, field in (("de-CH", locale), ("https://a.example/x", avatar)):
        assert re.match(field["pattern"], good), (good, field)
    for bad, field in (
        ("english", locale),
        ("http://a.example", avatar),
        ("https://user@a.example", avatar),
        ("https://\u00df.example/", avatar),
    ):
        assert not re.match(field["pattern"], bad), (bad, field)
    assert {"Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires"} <= set(zone["enum"])
    assert all(check_time_zone(name) == name for name in zone["enum"])
    student = api.account("profile-zones")
    await api.registered(student, full_name="Zone Tester")
    for bad in ("../etc", "europe/berlin", " UTC", "Mars/Olympus"):
        assert bad not in zone["enum"]
        await api.patch(student.id, {"time_zone": bad}, student, status=422)
