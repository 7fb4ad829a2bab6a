"""CSV imports through the real auth service: outcomes per row, reruns, dry runs, limits,
bad files of every kind, and a stop part-way."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from sukverse_common.events.contracts import UserRegistered
from sukverse_user_mgmt.app import create_app
from sukverse_user_mgmt.settings import UserMgmtSettings

NEW_PASSWORD = "a brand new passphrase for tests"


def tag() -> str:
    return uuid.uuid4().hex[:8]


async def post_csv(
    api: Any,
    data: str | bytes,
    *,
    dry_run: bool = False,
    caller: Any = None,
    content_type: str = "text/csv",
    status: int = 202,
) -> dict[str, Any]:
    caller = caller or api.admin
    body = data.encode() if isinstance(data, str) else data
    response = await api.client.post(
        "/imports",
        data=io.BytesIO(body),
        params={"dry_run": "true"} if dry_run else {},
        headers={**caller.headers, "Content-Type": content_type},
    )
    assert response.status == status, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def finished(api: Any, import_id: str, caller: Any = None) -> dict[str, Any]:
    caller = caller or api.admin
    deadline = time.monotonic() + 30
    while True:
        response = await api.client.get(f"/imports/{import_id}", headers=caller.headers)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        if body["status"] not in ("pending", "running"):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def rows(api: Any, import_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        response = await api.client.get(
            f"/imports/{import_id}/rows", params=params, headers=api.admin.headers
        )
        assert response.status == 200, await response.text()
        page = await response.json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def auth_user(api: Any, headers: dict[str, str], email: str) -> dict[str, Any] | None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{api.identity.url}/users", params={"email": email}, headers=headers) as r,
    ):
        items = (await r.json())["items"]
        return items[0] if items else None


async def test_an_import_creates_updates_and_fails_rows_with_reasons(
    api: Any, service_headers: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    t = tag()
    existing = api.account(f"existing{t}")
    await api.registered(existing)
    text = (
        "\ufeffE-Mail;Full Name;ROLE;Locale;Organisation\r\n"
        f"new1-{t}@example.com;New One;student;de-ch;Acme\r\n"
        f"NEW2-{t}@Example.com;New Two;instructor;;\r\n"
        f"{existing.email};Existing;instructor;en;Acme\r\n"
        f"not-an-email-{t};Bad Email;student;;\r\n"
        f"role-{t}@example.com;Bad Role;wizard;;\r\n"
        f"new1-{t}@EXAMPLE.com;Twice;student;;\r\n"
        f"long-{t}@example.com;{'x' * 201};student;;\r\n"
        f"locale-{t}@example.com;Bad Locale;student;klingon-galaxy;\r\n"
        "\r\n"
    )
    accepted = await post_csv(api, text.encode("utf-8"))
    assert accepted["status"] == "pending"
    report = await finished(api, accepted["id"])
    assert report["status"] == "done"
    assert report["counts"] == {"created": 2, "updated": 1, "unchanged": 0, "failed": 5}
    assert report["progress"] == {"done": 8, "total": 8}
    reasons = {row["line"]: row["reason"] for row in report["errors"]}
    assert set(reasons) == {5, 6, 7, 8, 9}
    assert "bad email" in reasons[5]
    assert "unknown role" in reasons[6]
    assert "duplicate in file (first on line 2)" in reasons[7]
    assert "too long" in reasons[8]
    assert reasons[9].startswith("locale:")
    assert all(
        "set_password_token" not in row or row["set_password_token"] is None
        for row in report["errors"]
    )

    listed = await rows(api, accepted["id"])
    assert [row["outcome"] for row in listed] == [
        "created",
        "created",
        "updated",
        "failed",
        "failed",
        "failed",
        "failed",
        "failed",
    ]
    tokens = [row["set_password_token"] for row in listed]
    assert all(tokens[:2]) and not any(tokens[2:])

    # The accounts exist in auth, once, with their roles; the existing one gained a role.
    new2 = await auth_user(api, service_headers, f"new2-{t}@example.com")
    assert new2 is not None and new2["roles"] == ["instructor"]
    promoted = await auth_user(api, service_headers, existing.email)
    assert promoted is not None and promoted["roles"] == ["instructor", "student"]
    profile = await api.wait_for(uuid.UUID(listed[0]["user_id"]), lambda p: True)
    assert (profile["locale"], profile["organisation"]) == ("de-CH", "Acme")
    assert profile["display_name"] == "New One"
    # Auth's registration event arrives after the import wrote the profile: it keeps it.
    await api.publish(
        UserRegistered(
            user_id=uuid.UUID(listed[0]["user_id"]),
            email=f"new1-{t}@example.com",
            full_name="New One",
            roles=["student"],
            registered_at=datetime.now(UTC),
        )
    )
    await api.roles_changed(uuid.UUID(listed[0]["user_id"]), ["student"])  # a marker after it
    await api.wait_for(uuid.UUID(listed[0]["user_id"]), lambda p: p["roles"] == ["student"])
    after = await (await api.get(listed[0]["user_id"])).json()
    assert (after["locale"], after["organisation"], after["display_name"]) == (
        "de-CH",
        "Acme",
        "New One",
    )

    # The new owner sets a password with the token, once.
    async with aiohttp.ClientSession() as session:
        url = f"{api.identity.url}/auth/password"
        body = {"token": tokens[0], "password": NEW_PASSWORD}
        async with session.post(url, json=body) as answer:
            assert answer.status == 204
        async with session.post(
            f"{api.identity.url}/auth/login",
            json={"email": f"new1-{t}@example.com", "password": NEW_PASSWORD},
        ) as login:
            assert login.status == 200

    # The tokens are in the report only, never in the logs.
    logs = capsys.readouterr()
    assert not any(token in logs.out or token in logs.err for token in tokens[:2])

    # Rerunning the same file changes nothing.
    again = await finished(api, (await post_csv(api, text.encode("utf-8")))["id"])
    assert again["counts"] == {"created": 0, "updated": 0, "unchanged": 3, "failed": 5}
    assert not any(row["set_password_token"] for row in await rows(api, again["id"]))


async def test_a_dry_run_reports_exactly_what_the_real_run_then_does(
    api: Any, service_headers: dict[str, str]
) -> None:
    t = tag()
    existing, same = api.account(f"dry-existing{t}"), api.account(f"dry-same{t}")
    await api.registered(existing)
    await api.registered(same)
    text = (
        "email,full_name,role,time_zone\n"
        f"dry-new-{t}@example.com,Dry New,student,Europe/Berlin\n"
        f"{existing.email},Existing,student,Asia/Tokyo\n"
        f"{same.email},Same,student,\n"
        f"bad@,Bad,student,\n"
    )
    dry = await finished(api, (await post_csv(api, text, dry_run=True))["id"])
    assert dry["dry_run"] is True and dry["status"] == "done"
    assert dry["counts"] == {"created": 1, "updated": 1, "unchanged": 1, "failed": 1}
    dry_rows = [(r["line"], r["outcome"], r["reason"]) for r in await rows(api, dry["id"])]
    # Nothing happened.
    assert await auth_user(api, service_headers, f"dry-new-{t}@example.com") is None
    assert (await (await api.get(existing.id)).json())["time_zone"] is None

    real = await finished(api, (await post_csv(api, text))["id"])
    assert real["counts"] == dry["counts"]
    assert [(r["line"], r["outcome"], r["reason"]) for r in await rows(api, real["id"])] == dry_rows
    assert (await (await api.get(existing.id)).json())["time_zone"] == "Asia/Tokyo"


async def test_a_multipart_upload_is_imported(api: Any) -> None:
    t = tag()
    form = aiohttp.FormData()
    form.add_field(
        "file",
        f"email,full_name\nform-{t}@example.com,Form User\n".encode(),
        filename="users.csv",
        content_type="text/csv",
    )
    response = await api.client.post("/imports", data=form, headers=api.admin.headers)
    assert response.status == 202, await response.text()
    report = await finished(api, (await response.json())["id"])
    assert report["counts"]["created"] == 1


HEADER = "email,full_name,role\n"


@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        ("email,full_name\n".encode("utf-16"), 422, "not UTF-8"),
        (
            "email,full_name\nj\xe9r\xf4me@example.com,J\xe9r\xf4me\n".encode("latin-1"),
            422,
            "not UTF-8",
        ),
        (b"", 422, "empty"),
        (b"\n\nemail,full_name\n", 422, "empty"),
        (HEADER.encode(), 422, "no rows"),
        (b"full_name,role\nAda,student\n", 422, "lacks the column(s): email"),
        (b"email,full_name,shoe_size\na@example.com,A,42\n", 422, "unknown column(s): shoe_size"),
        (b"email,Email,full_name\na@example.com,a@example.com,A\n", 422, "twice: email"),
        (b"email,full_name\na@example.com,A\x00\n", 422, "NUL"),
        (HEADER.encode() + b"u@example.com,U,student\n" * 50_001, 413, "more than 50000 rows"),
        (HEADER.encode() + b"u" * (5 * 1024 * 1024), 413, "at most 5242880 bytes"),
    ],
    ids=[
        "utf16",
        "latin1",
        "empty",
        "blank-first",
        "header-only",
        "no-email-column",
        "unknown-column",
        "duplicate-column",
        "nul",
        "too-many-rows",
        "too-large",
    ],
)
async def test_a_bad_file_is_refused_as_a_whole(
    api: Any, data: bytes, status: int, needle: str
) -> None:
    problem = await post_csv(api, data, status=status)
    assert needle in problem["detail"]
    assert problem["errors"][0]["field"] == "file"


async def test_a_100000_row_file_is_refused_clearly(api: Any) -> None:
    data = HEADER + "".join(f"u{i}@example.com,User {i},student\n" for i in range(100_000))
    problem = await post_csv(api, data, status=413)
    assert len(data) < 5 * 1024 * 1024  # the row limit refuses it, not the size limit
    assert problem["detail"] == "the file has more than 50000 rows; split it into smaller files"


async def test_other_media_types_and_forms_without_a_file_are_refused(api: Any) -> None:
    await post_csv(api, b'{"email": "a@example.com"}', content_type="application/json", status=415)
    form = aiohttp.FormData()
    form.add_field("other", b"email,full_name\n", filename="x.csv")
    response = await api.client.post("/imports", data=form, headers=api.admin.headers)
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "file"


async def test_an_import_is_seen_only_by_who_ran_it(api: Any) -> None:
    accepted = await post_csv(api, f"email,full_name\nseen-{tag()}@example.com,Seen\n")
    await finished(api, accepted["id"])
    other_admin = api.account("import-other-admin", "admin")
    for path in (f"/imports/{accepted['id']}", f"/imports/{accepted['id']}/rows"):
        response = await api.client.get(path, headers=other_admin.headers)
        assert response.status == 404
    student = api.account("import-student")
    assert (
        await api.client.get(f"/imports/{accepted['id']}", headers=student.headers)
    ).status == 403
    missing = await api.client.get(f"/imports/{uuid.uuid4()}", headers=api.admin.headers)
    assert missing.status == 404


async def test_a_stop_part_way_keeps_rows_consistent_and_says_where(
    api: Any, settings: UserMgmtSettings, aiohttp_client: Any
) -> None:
    t = tag()
    text = "email,full_name\n" + "".join(f"stop{i}-{t}@example.com,Stop {i}\n" for i in range(1000))
    accepted = await post_csv(api, text)
    deadline = time.monotonic() + 20
    while True:
        status = await (
            await api.client.get(f"/imports/{accepted['id']}", headers=api.admin.headers)
        ).json()
        if status["progress"]["done"] >= 10:
            break
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.02)
    await api.client.close()  # the service stops with the import part-way

    restarted = await aiohttp_client(create_app(settings))
    response = await restarted.get(f"/imports/{accepted['id']}", headers=api.admin.headers)
    report = await response.json()
    assert report["status"] == "interrupted"
    done = report["progress"]["done"]
    assert 10 <= done < 1000
    assert report["counts"]["created"] == done
    assert report["stopped_at_line"] == done + 2  # the header is line 1
    page = await restarted.get(
        f"/imports/{accepted['id']}/rows",
        params={"outcome": "created", "limit": "1000"},
        headers=api.admin.headers,
    )
    assert len((await page.json())["items"]) == done


async def test_an_import_while_auth_refuses_this_service_is_unavailable(
    settings: UserMgmtSettings, api: Any, aiohttp_client: Any
) -> None:
    wrong = settings.model_copy(update={"auth_client_secret": SecretStr("wrong")})
    client = await aiohttp_client(create_app(wrong))
    response = await client.post(
        "/imports",
        data="email,full_name\nx@example.com,X\n",
        headers={**api.admin.headers, "Content-Type": "text/csv"},
    )
    assert response.status == 503
    assert response.content_type == "application/problem+json"


async def test_auth_going_down_part_way_fails_the_import_and_says_where(
    settings: UserMgmtSettings, launch: Any, aiohttp_client: Any
) -> None:
    admin_email, admin_password = "root@example.com", "a long admin passphrase for tests"
    secret = "a-client-secret-of-this-test-0123"
    auth = launch(
        "auth",
        {
            "SUKVERSE_ADMIN_EMAIL": admin_email,
            "SUKVERSE_ADMIN_PASSWORD": admin_password,
            "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
            "SUKVERSE_ARGON2_TIME_COST": "1",
            "SUKVERSE_SERVICE_CLIENTS": json.dumps({"user_mgmt": secret}),
        },
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{auth.url}/auth/login", json={"email": admin_email, "password": admin_password}
        ) as login,
    ):
        headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    own = settings.model_copy(
        update={"auth_url": auth.url, "auth_client_secret": SecretStr(secret)}
    )
    client = await aiohttp_client(create_app(own))
    text = "email,full_name\n" + "".join(f"down{i}@example.com,Down {i}\n" for i in range(1000))
    response = await client.post(
        "/imports", data=text, headers={**headers, "Content-Type": "text/csv"}
    )
    assert response.status == 202, await response.text()
    import_id = (await response.json())["id"]
    deadline = time.monotonic() + 20
    while True:
        report = await (await client.get(f"/imports/{import_id}", headers=headers)).json()
        if report["progress"]["done"] >= 10:
            break
        assert time.monotonic() < deadline, report
        await asyncio.sleep(0.02)
    await asyncio.to_thread(auth.stop)

    deadline = time.monotonic() + 30
    while report["status"] not in ("failed", "done"):
        assert time.monotonic() < deadline, report
        await asyncio.sleep(0.05)
        report = await (await client.get(f"/imports/{import_id}", headers=headers)).json()
    assert report["status"] == "failed"
    assert "auth" in report["error"]
    done = report["progress"]["done"]
    assert 10 <= done < 1000
    assert report["counts"] == {"created": done, "updated": 0, "unchanged": 0, "failed": 0}
    assert report["stopped_at_line"] == done + 2
    assert report["finished_at"] is not None


async def test_rows_asked_of_auth_at_once_give_what_one_at_a_time_gives(
    api: Any, settings: UserMgmtSettings, aiohttp_client: Any, service_headers: dict[str, str]
) -> None:
    async def run(concurrency: int) -> tuple[dict[str, Any], list[tuple[int, str, Any, bool]]]:
        t = tag()
        existing = [api.account(f"conc{i}-{t}") for i in range(11)]
        for account in existing:
            await api.registered(account)
        lines = ["email,full_name,role,locale", f"{existing[10].email},Same,student,"]
        for i in range(1, 60):
            kind = i % 6
            if kind == 0:
                lines.append(f"{existing[i // 6].email},Existing,instructor,")
            elif kind == 1:
                lines.append(f"{existing[i // 6].email},Twice,instructor,")
            elif kind == 2:
                lines.append(f"bad-{i}-{t},Bad Email,student,")
            else:
                lines.append(f"c{i}-{t}@example.com,Conc {i},student,{'de' if i % 4 else ''}")
        client = await aiohttp_client(
            create_app(settings.model_copy(update={"import_concurrency": concurrency}))
        )
        text = "\n".join(lines) + "\n"
        response = await client.post(
            "/imports", data=text, headers={**api.admin.headers, "Content-Type": "text/csv"}
        )
        assert response.status == 202, await response.text()
        import_id = (await response.json())["id"]
        deadline = time.monotonic() + 60
        while True:
            report = await (
                await client.get(f"/imports/{import_id}", headers=api.admin.headers)
            ).json()
            if report["status"] not in ("pending", "running"):
                break
            assert time.monotonic() < deadline, report
            await asyncio.sleep(0.05)
        listed = await (
            await client.get(
                f"/imports/{import_id}/rows", params={"limit": "100"}, headers=api.admin.headers
            )
        ).json()
        outcomes = [
            (
                row["line"],
                row["outcome"],
                row["reason"] and row["reason"].replace(t, "T"),
                row["set_password_token"] is not None,
            )
            for row in listed["items"]
        ]
        created = [row["email"] for row in listed["items"] if row["outcome"] == "created"]
        for email in created:
            assert await auth_user(api, service_headers, email) is not None
        return report, outcomes

    one_report, one_rows = await run(1)
    many_report, many_rows = await run(8)
    assert one_report["status"] == many_report["status"] == "done"
    assert one_report["counts"] == many_report["counts"]
    assert one_report["counts"] == {"created": 30, "updated": 10, "unchanged": 1, "failed": 19}
    assert one_report["progress"] == many_report["progress"] == {"done": 60, "total": 60}
    assert one_rows == many_rows
