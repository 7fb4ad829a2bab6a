"""No password, hash or token appears in a log line or an error body."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from sukverse_auth.models import User
from sukverse_common.keys import DATABASE
from sukverse_common.logs import configure_logging


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The production log configuration; the test calls `configure_logging` itself, so that
    the logs go to the stdout captured while it runs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield capsys
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_flows_leave_no_secret_in_logs_or_bodies(
    json_logs: pytest.CaptureFixture[str], client: Any, api: Any, settings: Any
) -> None:
    configure_logging("INFO")
    password = "a passphrase that must never leak"
    await api.register("sec@example.com", password=password)
    pair = await api.login("sec@example.com", password)
    bodies: list[str] = []
    for response in (
        await client.post("/auth/login", json={"email": "sec@example.com", "password": "wrong1"}),
        await client.post("/auth/register", json={"email": "x", "password": password}),
        await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
        await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
        await client.get("/auth/me", headers=api.bearer(pair["access_token"] + "x")),
        await client.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "operator",
                "client_secret": "a-wrong-client-secret",
            },
        ),
    ):
        bodies.append(await response.text())

    async with client.app[DATABASE].sessions() as session:
        stored_hash = await session.scalar(
            select(User.password_hash).where(User.email == "sec@example.com")
        )
    assert stored_hash.startswith("$argon2id$")
    logs = json_logs.readouterr()
    output = logs.out + logs.err
    assert '"event": "request"' in output  # the access log was captured
    secrets = [
        password,
        "wrong1",
        pair["access_token"],
        pair["refresh_token"],
        stored_hash,
        "$argon2id$",
        api.operator_secret,
        "a-wrong-client-secret",
        api.admin_password,
    ]
    for secret in secrets:
        assert secret not in output, secret[:12]
        for body in bodies:
            assert secret not in body, secret[:12]


def test_redaction_scrubs_secret_keys_at_any_depth() -> None:
    from sukverse_common.logs import redact_secrets

    event = {
        "event": "x",
        "password": "p",
        "nested": {"Refresh_Token": "t", "ok": 1},
        "l": [{"secret": 1}],
    }
    scrubbed = redact_secrets(None, "info", event)
    assert scrubbed["password"] == "[redacted]"
    assert scrubbed["nested"] == {"Refresh_Token": "[redacted]", "ok": 1}
    assert scrubbed["l"] == [{"secret": "[redacted]"}]
