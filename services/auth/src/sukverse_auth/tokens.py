"""Signing keys, access tokens (signed JWTs) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from sukverse_common.security import ACCESS_TOKEN_ALGORITHMS, read_private_keys

ALGORITHM = ACCESS_TOKEN_ALGORITHMS[0]


class SigningKeys:
    """A JWK set of Ed25519 keys: the first signs, all are published for verification."""

    def __init__(self, keys: list[OKPKey]) -> None:
        if not keys:
            raise ValueError("a signing key set needs at least one key")
        for key in keys:
            if key.curve_name != "Ed25519" or not key.is_private:
                raise ValueError("signing keys must be private Ed25519 (OKP) keys")
        self.keys = keys
        self.active = keys[0]
        self.public = KeySet([OKPKey.import_key(key.as_dict(private=False)) for key in keys])

    @classmethod
    def from_file(cls, path: Path) -> SigningKeys:
        return cls([_with_kid(OKPKey.import_key(entry)) for entry in read_private_keys(path)])

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKeys:
        """Read the key file; create it (mode 0600) with a new key when it does not exist."""
        if path.exists():
            return cls.from_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = _with_kid(OKPKey.generate_key("Ed25519"))
        document = json.dumps({"keys": [key.as_dict(private=True, kid=key.kid)]}, indent=2)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(document)
        return cls([key])

    def jwks(self) -> dict[str, Any]:
        document = self.public.as_dict(private=False)
        for entry in document["keys"]:
            entry.update({"use": "sig", "alg": ALGORITHM})
        return dict(document)


def _with_kid(key: OKPKey) -> OKPKey:
    """Name every key by its RFC 7638 thumbprint unless the file names it."""
    if key.kid:
        return key
    data = key.as_dict(private=True)
    data["kid"] = key.thumbprint()
    return OKPKey.import_key(data)


class TokenIssuer:
    def __init__(self, keys: SigningKeys, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def access_token(
        self,
        *,
        subject: str,
        email: str | None,
        roles: list[str],
        scopes: list[str],
        session_id: uuid.UUID | None = None,
        generation: int | None = None,
    ) -> str:
        """A signed access token; a user's names the login it belongs to (`sid`) and the
        generation of the user's tokens (`gen`), by which auth revokes them."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
            "token_use": "access",
            "roles": roles,
            "scope": " ".join(scopes),
        }
        if email is not None:
            claims["email"] = email
        if session_id is not None:
            claims["sid"] = str(session_id)
        if generation is not None:
            claims["gen"] = generation
        header = {"alg": ALGORITHM, "kid": self.keys.active.kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, self.keys.active, algorithms=ACCESS_TOKEN_ALGORITHMS)

    def password_token(self, *, user_id: uuid.UUID, fingerprint: str, ttl_seconds: int) -> str:
        """A one-time token that sets the password of an account created without one; it
        names the account's current password hash, so it stops working once used."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": f"{self.audience}:set-password",
            "sub": str(user_id),
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "token_use": "set_password",
            "pwd": fingerprint,
        }
        header = {"alg": ALGORITHM, "kid": self.keys.active.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.keys.active, algorithms=ACCESS_TOKEN_ALGORITHMS)

    def read_password_token(self, token: str) -> tuple[uuid.UUID, str] | None:
        """The account and password-hash fingerprint a valid set-password token names."""
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": f"{self.audience}:set-password"},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            claims = jwt.decode(token, self.keys.public, algorithms=ACCESS_TOKEN_ALGORITHMS).claims
            registry.validate(claims)
            if claims.get("token_use") != "set_password":
                return None
            return uuid.UUID(str(claims["sub"])), str(claims["pwd"])
        except (JoseError, ValueError, KeyError):
            return None


def password_fingerprint(password_hash: str) -> str:
    """What a set-password token remembers of the hash it replaces."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


UNSET_PREFIX = "!unset:"


def unusable_password_hash() -> str:
    """The password hash of an account that has no password yet: no password matches it."""
    return UNSET_PREFIX + secrets.token_hex(16)


def new_refresh_token() -> tuple[str, str]:
    """A random opaque token and the SHA-256 it is stored as."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
