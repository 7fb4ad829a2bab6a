"""Access-token verification against the auth service's keys, and permission checks."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey
from pydantic import ValidationError

from sukverse_common.errors import Forbidden, Unauthorized
from sukverse_common.events.contracts import TokensRevoked
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.settings import CLOCK_SKEW_SECONDS, REVOCATION_SECONDS

log = structlog.get_logger(__name__)

ACCESS_TOKEN_ALGORITHMS = ["Ed25519"]
# Where auth announces them; every replica of every service listens (`Bus.listen`).
REVOCATION_TOPIC = TokensRevoked.topic()
MAX_HEADER_CHARS = 1024
# The subject of a machine client's token: `client:<client id>`.
MACHINE_SUBJECT_PREFIX = "client:"


_PEM_BLOCK = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", re.S
)


def read_private_keys(path: Path) -> list[Any]:
    """The private keys in a key file, each for a joserfc `import_key`: a JWK set, one JWK,
    or PEM blocks (as Kubernetes tooling such as Helm's `genPrivateKey` writes them). The
    first key signs; the others are only published, so that a rotation verifies old tokens."""
    raw = path.read_bytes()
    if raw.lstrip().startswith(b"-----BEGIN"):
        blocks = _PEM_BLOCK.findall(raw)
        if not blocks:
            raise ValueError(f"{path}: no PEM private key in the file")
        return blocks
    document = json.loads(raw)
    entries: list[Any] = document.get("keys", [document])
    return entries


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user, or a machine client acting as a service."""

    subject: str
    email: str | None
    roles: frozenset[str]
    scopes: frozenset[str]
    token_id: str
    expires_at: int
    user_id: uuid.UUID | None  # None for machine clients
    session_id: str | None = None  # the login the token belongs to (`sid`); None for clients
    generation: int = 0  # of the user's tokens (`gen`): an earlier one may have been revoked

    @property
    def is_machine(self) -> bool:
        """A machine client (the client-credentials grant) rather than a user's account."""
        return self.user_id is None and self.subject.startswith(MACHINE_SUBJECT_PREFIX)

    def has(self, permission: str) -> bool:
        return permission in self.scopes

    def require(self, permission: str) -> None:
        if not self.has(permission):
            raise Forbidden(f"this needs the permission {permission!r}")


KeyLoader = Callable[[], Awaitable[KeySet]]


class Revocations:
    """The access tokens that must stop working before they expire, as auth announced them
    (`TokensRevoked`): every token of a user from before a generation (logout everywhere, a
    role taken away, the account disabled), and every token of one session (a logout).

    An entry is kept as long as a token it covers can live, so the map holds at most the
    revocations of the last `REVOCATION_SECONDS`; applying one twice changes nothing."""

    def __init__(self, *, on_session: Callable[[str], None] | None = None) -> None:
        # subject -> (its tokens of a generation before this are refused, since when)
        self._users: dict[str, tuple[int, float]] = {}
        self._sessions: dict[str, float] = {}  # session id -> refused until this time
        self._swept_at = 0.0
        self._on_session = on_session  # told of each session revoked, once

    def revoke_user(self, subject: str, generation: int, at: float) -> None:
        if generation > self._users.get(subject, (0, 0.0))[0]:
            self._users[subject] = (generation, at)

    def revoke_session(self, session_id: str, at: float) -> None:
        if session_id not in self._sessions:
            self._sessions[session_id] = at + REVOCATION_SECONDS
            if self._on_session is not None:
                self._on_session(session_id)

    def revoked(self, principal: Principal) -> bool:
        user = self._users.get(principal.subject)
        if user is not None and principal.generation < user[0]:
            return True
        return principal.session_id is not None and principal.session_id in self._sessions

    def __len__(self) -> int:
        return len(self._users) + len(self._sessions)

    async def handle(self, events: Sequence[CloudEvent]) -> None:
        """Apply auth's `TokensRevoked` events; every other event is ignored."""
        for event in events:
            if event.type != TokensRevoked.event_type:
                continue
            try:
                revoked = TokensRevoked.model_validate(event.data)
            except ValidationError as exc:
                log.error("unreadable token revocation", event_id=event.id, error=str(exc))
                continue
            self.apply(revoked)
        self._sweep()

    def apply(self, revoked: TokensRevoked) -> None:
        """Apply one revocation: from the event, or in auth as soon as it commits one."""
        at = revoked.revoked_at.timestamp()
        if revoked.session_id is not None:
            self.revoke_session(str(revoked.session_id), at)
        if revoked.generation is not None:
            self.revoke_user(str(revoked.user_id), revoked.generation, at)

    def _sweep(self) -> None:
        """Forget what no token alive can be covered by any more, once a minute."""
        now = time.time()
        if now - self._swept_at < 60:
            return
        self._swept_at = now
        oldest = now - REVOCATION_SECONDS
        self._users = {who: entry for who, entry in self._users.items() if entry[1] > oldest}
        self._sessions = {sid: until for sid, until in self._sessions.items() if until > now}


class TokenVerifier:
    """Verifies access tokens, caching the key set and re-reading it on an unknown `kid`.

    A token that verified once is remembered until it expires, so a client that sends the
    same token on every call pays for the signature check once; a revoked one is refused
    from the moment its revocation arrives (`revocations`, fed by the bus). Of a session's
    tokens only the last one seen is remembered (a client that refreshed has dropped the
    one before), and none once the session ends: the cache holds the sessions in use, not
    every token of the last quarter hour.
    """

    def __init__(
        self,
        *,
        load_keys: KeyLoader,
        issuer: str,
        audience: str,
        min_refresh_seconds: float = 10.0,
        cache_size: int = 10_000,
    ) -> None:
        self._load_keys = load_keys
        self._issuer = issuer
        self._audience = audience
        self._min_refresh = min_refresh_seconds
        self._keys: KeySet | None = None
        self._loaded_at = 0.0
        # Keyed by a digest of the token, not the token (a tenth of its size): a full cache
        # of small entries is a few megabytes, not tens.
        self._verified: OrderedDict[bytes, Principal] = OrderedDict()
        self._by_session: dict[str, bytes] = {}  # session id -> its token's key in the cache
        self._cache_size = cache_size
        self.revocations = Revocations(on_session=self._forget_session)
        self._claims = jwt.JWTClaimsRegistry(
            leeway=CLOCK_SKEW_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
        )

    async def _key_for(self, kid: str) -> OKPKey | None:
        stale = time.monotonic() - self._loaded_at >= self._min_refresh
        if self._keys is None or (stale and not _has_kid(self._keys, kid)):
            try:
                self._keys = await self._load_keys()
                self._loaded_at = time.monotonic()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("could not load the token signing keys", error=repr(exc))
                if self._keys is None:
                    return None
        key = self._keys.get_by_kid(kid) if _has_kid(self._keys, kid) else None
        return key if isinstance(key, OKPKey) else None

    async def verify(self, token: str) -> Principal:
        if not token.isascii():  # a JWT is ASCII; a header's stray bytes are not a token
            raise Unauthorized("the access token is malformed")
        key = hashlib.blake2b(token.encode(), digest_size=16).digest()
        principal = self._verified.get(key)
        now = time.time()
        fresh = principal is None or principal.expires_at + CLOCK_SKEW_SECONDS <= now
        if principal is None or fresh:
            if principal is not None:
                self._drop(key)
            principal = await self._verify(token)
        if self.revocations and self.revocations.revoked(principal):
            raise Unauthorized("the access token was revoked; log in again or refresh")
        if fresh:  # remembered only now: a revoked token is not kept
            self._remember(key, principal, now)
        return principal

    def _remember(self, key: bytes, principal: Principal, now: float) -> None:
        self._verified[key] = principal
        session = principal.session_id
        if session is not None:
            before = self._by_session.get(session)
            self._by_session[session] = key
            if before is not None and before != key:
                self._verified.pop(before, None)
        # The oldest first: drop it while the cache is too full or its token expired.
        while len(self._verified) > 1:
            first, oldest = next(iter(self._verified.items()))
            full = len(self._verified) > self._cache_size
            if not full and oldest.expires_at + CLOCK_SKEW_SECONDS > now:
                break
            self._drop(first)

    def _drop(self, key: bytes) -> None:
        principal = self._verified.pop(key)
        session = principal.session_id
        if session is not None and self._by_session.get(session) == key:
            del self._by_session[session]

    def _forget_session(self, session: str) -> None:
        key = self._by_session.pop(session, None)
        if key is not None:
            self._verified.pop(key, None)

    async def _verify(self, token: str) -> Principal:
        header = _unverified_header(token)
        if header.get("alg") not in ACCESS_TOKEN_ALGORITHMS:
            raise Unauthorized("the access token's algorithm is not accepted")
        kid = header.get("kid")
        key = await self._key_for(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("the access token was signed by an unknown key")
        try:
            claims = jwt.decode(token, key, algorithms=ACCESS_TOKEN_ALGORITHMS).claims
            self._claims.validate(claims)
        except (JoseError, ValueError) as exc:
            raise Unauthorized("the access token is invalid or expired") from exc
        if claims.get("token_use") != "access":
            raise Unauthorized("this is not an access token")
        subject = str(claims["sub"])
        return Principal(
            subject=subject,
            user_id=_uuid_or_none(subject),
            email=claims.get("email"),
            roles=_shared(tuple(claims.get("roles", []))),
            scopes=_shared(tuple(str(claims.get("scope", "")).split())),
            token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
            session_id=str(claims["sid"]) if "sid" in claims else None,
            generation=int(claims.get("gen", 0)),
        )


_SETS: dict[tuple[str, ...], frozenset[str]] = {}


def _shared(values: tuple[str, ...]) -> frozenset[str]:
    """One frozenset for every token of the same roles or scopes: there are few kinds, and
    the cache of verified tokens keeps thousands."""
    found = _SETS.get(values)
    if found is None:
        if len(_SETS) >= 1024:
            _SETS.clear()
        found = _SETS[values] = frozenset(values)
    return found


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to choose the key; nothing in it is trusted."""
    encoded = token.split(".", 1)[0]
    if len(encoded) > MAX_HEADER_CHARS:
        raise Unauthorized("the access token is malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, RecursionError) as exc:
        raise Unauthorized("the access token is malformed") from exc
    if not isinstance(header, dict):
        raise Unauthorized("the access token is malformed")
    return header


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def jwks_loader(url: str, *, timeout: float = 5.0) -> KeyLoader:
    """Fetch a published JWK set (the auth service's `/.well-known/jwks.json`)."""

    async def load() -> KeySet:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(url) as response,
        ):
            response.raise_for_status()
            return KeySet.import_key_set(await response.json())

    return load
