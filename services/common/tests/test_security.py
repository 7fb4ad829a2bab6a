"""Token verification against a JWKS served over real HTTP, with key rotation."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, OKPKey

from sukverse_common.errors import Unauthorized
from sukverse_common.security import TokenVerifier, jwks_loader


def _token(key: OKPKey) -> str:
    now = int(time.time())
    claims = {
        "iss": "iss",
        "aud": "aud",
        "sub": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "token_use": "access",
        "roles": ["student"],
        "scope": "a:b c:d",
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


async def test_unknown_kids_do_not_hammer_the_key_server(aiohttp_server: Any) -> None:
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k"})
    fetches = []

    async def jwks(_: web.Request) -> web.Response:
        fetches.append(1)
        return web.json_response(KeySet([key]).as_dict(private=False))

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    server = await aiohttp_server(app)
    verifier = TokenVerifier(
        load_keys=jwks_loader(str(server.make_url("/jwks"))),
        issuer="iss",
        audience="aud",
        min_refresh_seconds=60,
    )
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
