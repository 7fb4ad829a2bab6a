"""Token verification against a JWKS served over real HTTP, with key rotation."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, OKPKey

from sukverse_common.errors import Unauthorized
from sukverse_common.events.contracts import TokensRevoked
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.security import (
    Principal,
    Revocations,
    TokenVerifier,
    jwks_loader,
)
from sukverse_common.settings import CLOCK_SKEW_SECONDS, REVOCATION_SECONDS


def _token(key: OKPKey, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "iss",
        "aud": "aud",
        "sub": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "token_use": "access",
        "roles": ["student"],
        "scope": "a:b c:d",
        **changes,
    }
    return jwt.encode({"alg": "Ed25519", "kid": key.kid}, claims, key, algorithms=["Ed25519"])


async def test_unknown_kid_refetches_the_key_set_once(aiohttp_server: Any) -> None:
    first = OKPKey.generate_key("Ed25519", parameters={"kid": "one"})
    second = OKPKey.generate_key("Ed25519", parameters={"kid": "two"})
    published = [first]
    fetches = []

    async def jwks(_: web.Request) -> web.Response:
        fetches.append(1)
        return web.json_response(KeySet(list(published)).as_dict(private=False))

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    server = await aiohttp_server(app)
    verifier = TokenVerifier(
        load_keys=jwks_loader(str(server.make_url("/jwks"))),
        issuer="iss",
        audience="aud",
        min_refresh_seconds=0,
    )
    principal = await verifier.verify(_token(first))
    assert principal.scopes == {"a:b", "c:d"} and principal.roles == {"student"}
    await verifier.verify(_token(first))
    assert len(fetches) == 1  # cached

    published.append(second)  # rotation: a new key appears
    await verifier.verify(_token(second))
    assert len(fetches) == 2

    stranger = OKPKey.generate_key("Ed25519", parameters={"kid": "stranger"})
    with pytest.raises(Unauthorized):
        await verifier.verify(_token(stranger))


async def _key_server(aiohttp_server: Any, key: OKPKey, fetches: list[int] | None = None) -> str:
    """A JWKS endpoint serving `key`, counting its fetches in `fetches`; its URL."""

    async def jwks(_: web.Request) -> web.Response:
        if fetches is not None:
            fetches.append(1)
        return web.json_response(KeySet([key]).as_dict(private=False))

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    server = await aiohttp_server(app)
    return str(server.make_url("/jwks"))


def _verifier(url: str, **options: Any) -> TokenVerifier:
    return TokenVerifier(load_keys=jwks_loader(url), issuer="iss", audience="aud", **options)


async def test_unknown_kids_do_not_hammer_the_key_server(aiohttp_server: Any) -> None:
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k"})
    fetches: list[int] = []
    verifier = _verifier(await _key_server(aiohttp_server, key, fetches), min_refresh_seconds=60)
    for i in range(10):
        stranger = OKPKey.generate_key("Ed25519", parameters={"kid": f"s{i}"})
        with pytest.raises(Unauthorized):
            await verifier.verify(_token(stranger))
    assert len(fetches) == 1


async def test_an_unreachable_key_server_means_401_not_500() -> None:
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k"})
    verifier = TokenVerifier(
        load_keys=jwks_loader("http://127.0.0.1:9/jwks", timeout=1), issuer="iss", audience="aud"
    )
    with pytest.raises(Unauthorized):
        await verifier.verify(_token(key))


def _revoked(
    user_id: uuid.UUID | None,
    at: float,
    *,
    generation: int | None = None,
    session: uuid.UUID | None = None,
) -> CloudEvent:
    data = TokensRevoked(
        user_id=user_id or uuid.uuid4(),
        session_id=session,
        generation=generation,
        reason="logout" if session else "roles_removed",
        revoked_at=datetime.fromtimestamp(at, UTC),
    )
    return CloudEvent.wrap(data, subject=str(data.user_id))


def _principal(subject: uuid.UUID, generation: int, session: uuid.UUID | None = None) -> Principal:
    return Principal(
        subject=str(subject),
        email=None,
        roles=frozenset(),
        scopes=frozenset(),
        token_id="j",
        expires_at=int(time.time()) + 900,
        user_id=subject,
        session_id=str(session) if session else None,
        generation=generation,
    )


async def test_revocations_refuse_a_users_earlier_tokens_and_a_sessions_every_token() -> None:
    revocations, ann, bob, now = Revocations(), uuid.uuid4(), uuid.uuid4(), time.time()
    session = uuid.uuid4()
    await revocations.handle(
        [_revoked(ann, now, generation=2), _revoked(bob, now, session=session)]
    )
    assert revocations.revoked(_principal(ann, 1))
    assert not revocations.revoked(_principal(ann, 2))  # issued since
    assert revocations.revoked(_principal(bob, 5, session))
    assert not revocations.revoked(_principal(bob, 0, uuid.uuid4()))
    # Applied twice, or an earlier one after a later one: the later generation stands.
    await revocations.handle([_revoked(ann, now, generation=1), _revoked(ann, now, generation=2)])
    assert not revocations.revoked(_principal(ann, 2))
    assert revocations.revoked(_principal(ann, 1))


async def test_revocations_ignore_other_events_and_log_an_unreadable_one() -> None:
    revocations, ann = Revocations(), uuid.uuid4()
    other = CloudEvent(
        source="/sukverse/auth",
        type="io.sukverse.auth.user.registered.v1",
        subject="x",
        data={"user_id": str(ann)},
    )
    broken = CloudEvent(
        source="/sukverse/auth",
        type=TokensRevoked.event_type,
        subject="x",
        data={"user_id": "not a uuid"},
    )
    await revocations.handle([other, broken, _revoked(ann, time.time(), generation=1)])
    assert len(revocations) == 1


async def test_revocations_forget_what_no_live_token_can_be_covered_by() -> None:
    revocations, now = Revocations(), time.time()
    long_ago = now - REVOCATION_SECONDS - 5
    await revocations.handle(
        [
            _revoked(None, long_ago, generation=1),
            _revoked(None, long_ago, session=uuid.uuid4()),
            _revoked(None, now - 10, generation=1),
            _revoked(None, now - 10, session=uuid.uuid4()),
        ]
    )
    assert len(revocations) == 2


async def test_a_verified_token_is_refused_once_revoked(aiohttp_server: Any) -> None:
    """The cache of verified tokens does not outlast a revocation."""
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k"})
    verifier = _verifier(await _key_server(aiohttp_server, key))
    token = _token(key)
    principal = await verifier.verify(token)
    assert principal.generation == 0 and principal.session_id is None
    await verifier.revocations.handle([_revoked(principal.user_id, time.time(), generation=1)])
    with pytest.raises(Unauthorized, match="revoked"):
        await verifier.verify(token)


async def test_the_cache_of_verified_tokens_keeps_only_live_ones_and_no_more_than_its_size(
    aiohttp_server: Any,
) -> None:
    """A full cache drops its oldest entry, and an expired token's entry goes as soon as a
    newer one comes: a service's memory does not grow with every token it ever saw."""
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k"})
    url = await _key_server(aiohttp_server, key)
    verifier = _verifier(url, cache_size=3)
    tokens = [_token(key) for _ in range(5)]
    principals = [await verifier.verify(token) for token in tokens]
    assert len(verifier._verified) == 3
    assert await verifier.verify(tokens[0]) == principals[0]  # verified again, not lost
    # Tokens that share their roles and scopes share the sets, rather than a copy each.
    assert principals[1].scopes is principals[2].scopes
    # An entry whose token expired makes way for the next one: this one expires for the
    # cache a second from now (its `exp` is within the clock-skew leeway).
    fresh = _verifier(url)
    await fresh.verify(_token(key, exp=int(time.time()) + 1 - CLOCK_SKEW_SECONDS))
    await fresh.verify(tokens[0])
    assert len(fresh._verified) == 2
    await asyncio.sleep(1.5)
    await fresh.verify(tokens[1])
    assert len(fresh._verified) == 2  # the expired one went, tokens[0] and [1] stay


async def test_the_cache_keeps_one_token_of_a_session_and_none_once_it_ends(
    aiohttp_server: Any,
) -> None:
    """A refreshed session's earlier token leaves the cache, and a logout takes the
    session's token with it, even if it is never sent again; a token of an ended session
    is refused and not remembered. Sessions of other users are untouched."""
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k"})
    verifier = _verifier(await _key_server(aiohttp_server, key))
    ann, bob, session, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first, refreshed = (_token(key, sub=str(ann), sid=str(session), jti=j) for j in "ab")
    bobs = _token(key, sub=str(bob), sid=str(other))
    await verifier.verify(first)
    await verifier.verify(bobs)
    await verifier.verify(refreshed)
    assert len(verifier._verified) == 2  # bob's and the refreshed one
    assert await verifier.verify(first) == await verifier.verify(first)  # verified again
    await verifier.revocations.handle([_revoked(ann, time.time(), session=session)])
    assert len(verifier._verified) == 1 and verifier._by_session.keys() == {str(other)}
    for token in (first, refreshed):
        with pytest.raises(Unauthorized, match="revoked"):
            await verifier.verify(token)
    assert len(verifier._verified) == 1 and len(verifier._by_session) == 1
    assert (await verifier.verify(bobs)).subject == str(bob)


async def test_a_token_of_stray_bytes_is_refused_not_a_crash() -> None:
    """aiohttp hands a header's invalid UTF-8 on as surrogates: a 401, like any malformed
    token, not a failure to hash it."""

    async def no_keys() -> KeySet:
        raise AssertionError("a malformed token needs no key")

    verifier = TokenVerifier(load_keys=no_keys, issuer="iss", audience="aud")
    for token in ("eyJ\udcff.x.y", "jwt-ünïcode"):
        with pytest.raises(Unauthorized, match="malformed"):
            await verifier.verify(token)
