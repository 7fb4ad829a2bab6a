"""Refresh rotation, logout, machine clients, and every kind of bad access token."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey

from sukverse_auth.app import create_app
from sukverse_auth.settings import AuthSettings
from sukverse_auth.tokens import SigningKeys
from sukverse_common.events.bus import Bus
from sukverse_common.events.contracts import TokensRevoked
from sukverse_common.events.envelope import CloudEvent


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(client: Any, api: Any) -> None:
    await api.register("rui@example.com")
    first = await api.login("rui@example.com")

    response = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status == 200
    second = await response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/auth/me", headers=api.bearer(second["access_token"]))).status == 200

    # The first token again: a thief or a replay. The whole family goes.
    reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status == 401
    assert "already used" in (await reused.json())["detail"]
    after = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status == 401

    # Another login is another family, untouched.
    other = await api.login("rui@example.com")
    response = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert response.status == 200


async def test_a_session_refreshes_within_its_idle_timeout_and_lifetime_only(
    client: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh token expires unused after the idle timeout (30 days), and a login's
    refreshes end at the session's lifetime (90 days), however often it refreshed."""
    from sukverse_auth import service

    login_at = datetime.now(UTC)
    clock = [login_at]
    monkeypatch.setattr(service, "_now", lambda: clock[0])
    await api.register("ida@example.com")
    pair = await api.login("ida@example.com")

    async def refresh(after: timedelta) -> Any:
        clock[0] = login_at + after
        return await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    for days in (29, 58, 87):  # each within 30 days of the last
        response = await refresh(timedelta(days=days))
        assert response.status == 200, await response.text()
        pair = await response.json()
    late = await refresh(timedelta(days=90, seconds=1))  # 3 days after the last refresh
    assert late.status == 401
    assert "90 days after the login" in (await late.json())["detail"]

    pair = await api.login("ida@example.com")
    login_at = clock[0]
    idle = await refresh(timedelta(days=30, seconds=1))
    assert idle.status == 401
    assert "30 days unused" in (await idle.json())["detail"]


async def test_unknown_refresh_token_is_401(client: Any) -> None:
    response = await client.post("/auth/refresh", json={"refresh_token": "made-up"})
    assert response.status == 401


async def test_logout_revokes_the_session_and_all_sessions(client: Any, api: Any) -> None:
    await api.register("eva@example.com")
    one, two = await api.login("eva@example.com"), await api.login("eva@example.com")
    response = await client.post(
        "/auth/logout",
        json={"refresh_token": one["refresh_token"]},
        headers=api.bearer(one["access_token"]),
    )
    assert response.status == 204
    assert (
        await client.post("/auth/refresh", json={"refresh_token": one["refresh_token"]})
    ).status == 401
    response = await client.post(
        "/auth/logout", json={"all_sessions": True}, headers=api.bearer(two["access_token"])
    )
    assert response.status == 204
    assert (
        await client.post("/auth/refresh", json={"refresh_token": two["refresh_token"]})
    ).status == 401


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, read without verifying (auth verified it; this reads what it says)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def refused(client: Any, token: str) -> str:
    """Auth refuses the token at once, not once its own event comes back to it (it applies
    a revocation as the change commits); the reason."""
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401, "the access token still works"
    return str((await response.json())["detail"])


async def announced(published: list[CloudEvent], count: int) -> list[CloudEvent]:
    """The revocation events once `count` are published (5 s at most)."""
    deadline = time.monotonic() + 5
    while len(revocations := [e for e in published if e.type == TokensRevoked.event_type]) < count:
        assert time.monotonic() < deadline, revocations
        await asyncio.sleep(0.05)
    return revocations


async def test_each_revocation_is_an_event_and_ends_the_access_tokens_it_covers(
    client: Any, api: Any, published: list[CloudEvent]
) -> None:
    """A logout ends its session's access tokens (`sid`); logging out everywhere, a role
    taken away or the account disabled every earlier one of the user (`gen`). Each is a
    `tokens_revoked` event, and a token issued right after is not covered. A role added
    revokes nothing."""
    admin = api.bearer(await api.admin_token())
    user = await api.register("rev@example.com")
    one, two = await api.login("rev@example.com"), await api.login("rev@example.com")
    assert claims_of(one["access_token"])["sid"] != claims_of(two["access_token"])["sid"]
    assert claims_of(one["access_token"])["gen"] == 0

    # Logging out without a refresh token ends the caller's own session only.
    out = await client.post("/auth/logout", json={}, headers=api.bearer(one["access_token"]))
    assert out.status == 204
    assert "revoked" in await refused(client, one["access_token"])
    assert (await client.get("/auth/me", headers=api.bearer(two["access_token"]))).status == 200
    ended = await client.post("/auth/refresh", json={"refresh_token": one["refresh_token"]})
    assert ended.status == 401

    # A role added: nothing revoked. Taken away: every earlier token, not the next one.
    roles = f"/users/{user['id']}/roles"
    await client.put(roles, json={"roles": ["student", "instructor"]}, headers=admin)
    assert (await client.get("/auth/me", headers=api.bearer(two["access_token"]))).status == 200
    await client.put(roles, json={"roles": ["student"]}, headers=admin)
    fresh = await api.login("rev@example.com")
    assert claims_of(fresh["access_token"])["gen"] == 1
    assert "revoked" in await refused(client, two["access_token"])
    me = await client.get("/auth/me", headers=api.bearer(fresh["access_token"]))
    assert me.status == 200, await me.text()
    renewed = await client.post("/auth/refresh", json={"refresh_token": two["refresh_token"]})
    assert renewed.status == 200  # the session goes on, with tokens of the roles it has now
    assert claims_of((await renewed.json())["access_token"])["roles"] == ["student"]

    # At once again: the token of the revocation before is covered too.
    everywhere = await client.post(
        "/auth/logout", json={"all_sessions": True}, headers=api.bearer(fresh["access_token"])
    )
    assert everywhere.status == 204
    assert "revoked" in await refused(client, fresh["access_token"])

    revocations = await announced(published, 3)
    by = [(e.data["reason"], e.data["session_id"], e.data["generation"]) for e in revocations]
    assert by == [
        ("logout", claims_of(one["access_token"])["sid"], None),
        ("roles_removed", None, 1),
        ("logout", None, 2),
    ]
    assert {e.subject for e in revocations} == {user["id"]}


async def test_a_reused_refresh_token_ends_its_sessions_access_tokens(
    client: Any, api: Any, published: list[CloudEvent]
) -> None:
    await api.register("thief@example.com")
    first = await api.login("thief@example.com")
    second = await (
        await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status == 401
    assert "revoked" in await refused(client, second["access_token"])
    [event] = await announced(published, 1)
    assert event.data["reason"] == "refresh_reused"
    assert event.data["session_id"] == claims_of(second["access_token"])["sid"]


async def test_client_credentials_with_basic_auth_and_narrowed_scope(client: Any, api: Any) -> None:
    basic = base64.b64encode(f"operator:{api.operator_secret}".encode()).decode()
    response = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "users:read workshop:write"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status == 200, await response.text()
    grant = await response.json()
    assert grant["scope"] == "users:read workshop:write"
    assert "refresh_token" not in grant
    users = await client.get("/users", headers=api.bearer(grant["access_token"]))
    assert users.status == 200
    roles = await client.get("/roles", headers=api.bearer(grant["access_token"]))
    assert roles.status == 403


async def test_client_credentials_refusals(client: Any, api: Any) -> None:
    form = {"grant_type": "client_credentials", "client_id": "operator"}
    wrong = await client.post("/auth/token", data={**form, "client_secret": "guess"})
    assert wrong.status == 401
    unknown = await client.post(
        "/auth/token", data={**form, "client_id": "nobody", "client_secret": "x"}
    )
    assert unknown.status == 401
    assert (await wrong.json())["type"] == (await unknown.json())["type"]
    grant = await client.post(
        "/auth/token",
        data={"grant_type": "password", "client_id": "operator", "client_secret": "x"},
    )
    assert grant.status == 400
    as_json = await client.post("/auth/token", json=form)
    assert as_json.status == 415
    scope = await client.post(
        "/auth/token",
        data={**form, "client_secret": api.operator_secret, "scope": "roles:write"},
    )
    assert scope.status == 400
    assert (await scope.json())["type"].endswith("/invalid-scope")


OPERATOR_SCOPES = {
    "users:read",
    "users:write",
    "roles:assign",
    "workshop:read",
    "workshop:write",
    "enrollment:read",
    "enrollment:write",
    "quiz:read",
    "quiz:write",
    "analytics:read",
    "certificate:write",
}


async def _admin(client: Any) -> dict[str, str]:
    settings = {"email": "admin@example.com", "password": "a long admin passphrase for tests"}
    tokens = await (await client.post("/auth/login", json=settings)).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _unverified(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def _client_token(client: Any, client_id: str, secret: str) -> Any:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return await client.post("/auth/token", data=form)


async def test_each_machine_client_holds_its_own_role(
    settings: AuthSettings, bus: Bus, aiohttp_client: Any
) -> None:
    """The operator's tokens carry exactly what reconciling a cohort takes; a client without
    a role of its own gets `service`; a client whose role is missing gets no token."""
    clients = {"operator": "op-secret", "user_mgmt": "um-secret", "ci": "ci-secret"}
    configured = AuthSettings(
        **{
            **settings.model_dump(),
            "service_clients": clients,
            "service_client_roles": {"ci": "ci-runner"},
        }
    )
    assert AuthSettings(service_client_roles={"ci": "x"}).service_client_roles == {
        "operator": "operator",
        "ci": "x",
    }
    client = await aiohttp_client(create_app(configured, bus=bus))
    await bus.start()
    operator = await _client_token(client, "operator", "op-secret")
    assert operator.status == 200, await operator.text()
    grant = await operator.json()
    assert set(grant["scope"].split()) == OPERATOR_SCOPES
    claims = _unverified(grant["access_token"])
    assert claims["sub"] == "client:operator"
    assert claims["roles"] == ["operator"]
    # Roles themselves are out of its reach.
    bearer = {"Authorization": f"Bearer {grant['access_token']}"}
    assert (await client.get("/roles", headers=bearer)).status == 403
    # It gives students and instructors their roles, never an administrator's or a
    # machine client's, and takes none of those away.
    body = {"email": "made@example.com", "full_name": "Made", "roles": ["instructor"]}
    made = await client.post("/users", json=body, headers=bearer)
    assert made.status == 201, await made.text()
    user_id = (await made.json())["id"]
    for roles in (["admin"], ["service"], ["instructor", "operator"]):
        refused = await client.post(
            "/users",
            json={**body, "email": f"{roles[-1]}@example.com", "roles": roles},
            headers=bearer,
        )
        assert refused.status == 403, await refused.text()
        assert "needs 'roles:write'" in (await refused.json())["detail"]
        promoted = await client.put(
            f"/users/{user_id}/roles", json={"roles": roles}, headers=bearer
        )
        assert promoted.status == 403
    assert (
        await client.put(f"/users/{user_id}/roles", json={"roles": ["student"]}, headers=bearer)
    ).status == 200
    admin_id = (await (await client.get("/auth/me", headers=await _admin(client))).json())["id"]
    demoted = await client.put(
        f"/users/{admin_id}/roles", json={"roles": ["student"]}, headers=bearer
    )
    assert demoted.status == 403
    users = await (await client.get("/users?email=made@example.com", headers=bearer)).json()
    assert users["items"][0]["roles"] == ["student"]
    service = await (await _client_token(client, "user_mgmt", "um-secret")).json()
    assert {"profiles:write", "roles:assign"} <= set(service["scope"].split())
    assert _unverified(service["access_token"])["roles"] == ["service"]
    missing = await _client_token(client, "ci", "ci-secret")
    assert missing.status == 401
    assert "'ci-runner' does not exist" in (await missing.json())["detail"]


def _claims(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "sukverse-auth",
        "aud": "sukverse",
        "sub": user_id,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "token_use": "access",
        "roles": ["admin"],
        "scope": "users:read",
    }
    claims.update(overrides)
    return claims


def _sign(key: OKPKey, claims: dict[str, Any], **header: Any) -> str:
    return jwt.encode(
        {"alg": "Ed25519", "kid": key.kid, **header}, claims, key, algorithms=["Ed25519"]
    )


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
async def forge(client: Any, api: Any, settings: AuthSettings) -> Any:
    """The service's own signing key, to forge tokens that are wrong in one way only."""
    user = await api.register("mal@example.com")
    key = SigningKeys.from_file(settings.data_dir / "auth-signing-keys.json").active
    return key, user["id"]


async def test_every_kind_of_bad_token_is_401(client: Any, api: Any, forge: Any) -> None:
    key, user_id = forge
    good = _sign(key, _claims(user_id))
    assert (await client.get("/users", headers=api.bearer(good))).status == 200

    header, payload, signature = good.split(".")
    tampered_payload = _b64(_claims(user_id, scope="users:read roles:write"))
    stranger = OKPKey.generate_key("Ed25519", parameters={"kid": "stranger"})
    bad_tokens = {
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "expired": _sign(key, _claims(user_id, exp=int(time.time()) - 120)),
        "wrong audience": _sign(key, _claims(user_id, aud="somebody-else")),
        "wrong issuer": _sign(key, _claims(user_id, iss="https://evil.example")),
        "alg none": f"{_b64({'alg': 'none', 'kid': key.kid})}.{payload}.",
        "unknown kid": _sign(stranger, _claims(user_id)),
        "not an access token": _sign(key, _claims(user_id, token_use="refresh")),
        "garbage": "not-a-jwt",
    }
    for name, token in bad_tokens.items():
        response = await client.get("/users", headers=api.bearer(token))
        assert response.status == 401, name
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert token not in await response.text()


async def test_jwks_publishes_public_keys_only(client: Any) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status == 200
    keys = (await response.json())["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "OKP" and keys[0]["crv"] == "Ed25519" and keys[0]["alg"] == "Ed25519"
    assert "d" not in keys[0]


def test_a_pem_key_file_signs_and_a_second_key_is_only_published(tmp_path: Any) -> None:
    """Kubernetes tooling (Helm's genPrivateKey, cert-manager) writes PEM, not JWK sets."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pems = [
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for _ in range(2)
    ]
    path = tmp_path / "keys.pem"
    path.write_bytes(b"\n".join(pems))
    keys = SigningKeys.from_file(path)
    assert len(keys.jwks()["keys"]) == 2
    assert keys.active.as_pem(private=True) == pems[0]
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="no PEM private key"):
        SigningKeys.from_file(path)


async def test_a_refresh_racing_a_logout_everywhere_does_not_outlive_it(
    client: Any, api: Any
) -> None:
    """Whichever comes first, once the logout has answered, no refresh token of the user
    works: a refresh that got in before it is revoked with the rest."""
    await api.register("racer@example.com")
    for _ in range(8):
        pair = await api.login("racer@example.com")
        refreshed, logged_out = await asyncio.gather(
            client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
            client.post(
                "/auth/logout",
                json={"all_sessions": True},
                headers=api.bearer(pair["access_token"]),
            ),
        )
        assert logged_out.status in (204, 401), await logged_out.text()
        if refreshed.status == 200:
            escaped = (await refreshed.json())["refresh_token"]
            again = await client.post("/auth/refresh", json={"refresh_token": escaped})
            assert again.status == 401, "a refresh token outlived the logout"
        else:
            assert refreshed.status == 401, await refreshed.text()
