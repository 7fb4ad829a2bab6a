"""Open Badges 3.0: the service's RS256 signing key, OpenBadgeCredentials signed as VC-JWT
(Open Badges 3.0 §8.2), and the W3C Bitstring Status Lists that publish their revocation."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from sukverse_common.security import read_private_keys

ALGORITHM = "RS256"
CONTEXT = [
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
]
KEY_FILE_NAME = "certificate-signing-keys.json"
# Entries in one status list: the specification's minimum, 16 KiB uncompressed.
STATUS_LIST_SIZE = 131_072
# A list takes new credentials until half its positions are used, so that a random free
# position is found in two tries on average and a position says little of its neighbours.
STATUS_LIST_FILL = STATUS_LIST_SIZE // 2
# How long a verifier may cache a status list before it fetches it again (its `ttl` and
# the response's Cache-Control), and how long a copy of one stays valid (`validUntil`):
# a holder who shows a stale copy of a list shows one at most a day old.
STATUS_LIST_TTL = timedelta(minutes=5)
STATUS_LIST_VALIDITY = timedelta(days=1)
STATUS_LIST_BACKDATE = timedelta(minutes=1)


class BadgeKeys:
    """A JWK set of private RSA keys: the first signs, all are published."""

    def __init__(self, keys: list[RSAKey]) -> None:
        if not keys or not all(key.is_private for key in keys):
            raise ValueError("badge signing keys must be private RSA keys")
        self.keys = keys
        self.active = keys[0]
        self.public = KeySet([RSAKey.import_key(key.as_dict(private=False)) for key in keys])

    @classmethod
    def from_file(cls, path: Path) -> BadgeKeys:
        return cls([_with_kid(RSAKey.import_key(entry)) for entry in read_private_keys(path)])

    @classmethod
    def load_or_create(cls, path: Path) -> BadgeKeys:
        """Read the key file; create it (mode 0600) with a new 2048-bit key when missing."""
        if path.exists():
            return cls.from_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = _with_kid(RSAKey.generate_key(2048))
        document = json.dumps({"keys": [key.as_dict(private=True, kid=key.kid)]}, indent=2)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(document)
        return cls([key])

    def jwks(self, *, key_base_url: str) -> dict[str, Any]:
        """The public keys, each named by its URI (`key_base_url/<thumbprint>`), the `kid`
        that signed credentials carry."""
        document = self.public.as_dict(private=False)
        for entry in document["keys"]:
            entry.update({"use": "sig", "alg": ALGORITHM, "kid": f"{key_base_url}/{entry['kid']}"})
        return dict(document)

    def public_key(self, kid: str) -> dict[str, Any] | None:
        """One public key by its thumbprint, or None."""
        for key in self.keys:
            if key.kid == kid:
                entry = dict(key.as_dict(private=False))
                entry.update({"use": "sig", "alg": ALGORITHM})
                return entry
        return None


def _with_kid(key: RSAKey) -> RSAKey:
    """Name every key by its RFC 7638 thumbprint unless the file names it."""
    if key.kid:
        return key
    data = key.as_dict(private=True)
    data["kid"] = key.thumbprint()
    return RSAKey.import_key(data)


@dataclass(frozen=True)
class Award:
    """What a credential says: who issued which achievement to whom, and when."""

    certificate_id: uuid.UUID
    template_id: uuid.UUID
    user_id: uuid.UUID
    issued_at: datetime
    achievement_name: str
    achievement_description: str
    criteria_narrative: str
    recipient_name: str | None
    recipient_email: str | None
    identity_salt: str
    status_index: int


@dataclass(frozen=True)
class Issuer:
    """Who signs: the issuer profile's id and name, and the base URL of this service."""

    id: str
    name: str
    base_url: str

    def profile(self) -> dict[str, Any]:
        return {"id": self.id, "type": ["Profile"], "name": self.name}


def _timestamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_identity_salt() -> str:
    """A credential's own salt for its hashed identifiers: 128 random bits in hex."""
    return secrets.token_hex(16)


def identity_hash(identity: str, salt: str) -> str:
    """An Open Badges IdentityHash: `sha256$` and the hex SHA-256 of the identity with the
    salt appended, both UTF-8."""
    return "sha256$" + hashlib.sha256((identity + salt).encode()).hexdigest()


def status_list_url(base_url: str, number: int) -> str:
    return f"{base_url}/status-lists/{number}"


def status_position(status_index: int) -> tuple[int, int]:
    """A certificate's status index as (the number of its list, from 1; its position)."""
    number, position = divmod(status_index, STATUS_LIST_SIZE)
    return number + 1, position


def credential(award: Award, issuer: Issuer) -> dict[str, Any]:
    """The OpenBadgeCredential (a W3C Verifiable Credential 2.0) of an award. The subject
    identifies its holder as the Open Badges implementation guide recommends: the email,
    when known, as a salted IdentityHash (a verifier who is told the address hashes it with
    the salt and compares; one who is not cannot read it back), and the name in plain text
    (`ext:name`), for displayers; its `credentialStatus` points at the revocation status
    list that holds its bit."""
    identifiers = []
    if award.recipient_email is not None:
        identifiers.append(
            {
                "type": "IdentityObject",
                "identityHash": identity_hash(award.recipient_email, award.identity_salt),
                "identityType": "emailAddress",
                "hashed": True,
                "salt": award.identity_salt,
            }
        )
    if award.recipient_name is not None:
        identifiers.append(
            {
                "type": "IdentityObject",
                "identityHash": award.recipient_name,
                "identityType": "ext:name",
                "hashed": False,
            }
        )
    subject: dict[str, Any] = {"id": f"urn:uuid:{award.user_id}", "type": ["AchievementSubject"]}
    if identifiers:
        subject["identifier"] = identifiers
    subject["achievement"] = {
        "id": f"{issuer.base_url}/achievements/{award.template_id}",
        "type": ["Achievement"],
        "name": award.achievement_name,
        "description": award.achievement_description,
        "criteria": {"narrative": award.criteria_narrative},
    }
    number, position = status_position(award.status_index)
    status_list = status_list_url(issuer.base_url, number)
    return {
        "@context": CONTEXT,
        "id": f"urn:uuid:{award.certificate_id}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": award.achievement_name,
        "issuer": issuer.profile(),
        "validFrom": _timestamp(award.issued_at),
        "credentialSubject": subject,
        "credentialStatus": {
            "id": f"{status_list}#{position}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(position),
            "statusListCredential": status_list,
        },
    }


def encode_bitstring(positions: Iterable[int], size: int = STATUS_LIST_SIZE) -> str:
    """A status list's `encodedList`: the bitstring with position 0 at the left-most bit
    of its first byte, GZIP-compressed, base64url without padding, multibase prefix `u`."""
    bits = bytearray(size // 8)
    for position in positions:
        bits[position // 8] |= 0x80 >> (position % 8)
    # mtime 0: the same list compresses to the same bytes.
    compressed = gzip.compress(bytes(bits), mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode()


def status_list_credential(
    number: int, revoked: Iterable[int], issuer: Issuer, *, now: datetime
) -> dict[str, Any]:
    """The BitstringStatusListCredential of revocations for list `number`: a bit set for
    each revoked position. Valid for STATUS_LIST_VALIDITY from a minute before `now`;
    `ttl` (milliseconds) tells verifiers when to fetch it again."""
    url = status_list_url(issuer.base_url, number)
    # Valid from a minute ago: a verifier whose clock runs a little behind still takes it.
    valid_from = now.replace(microsecond=0) - STATUS_LIST_BACKDATE
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer.profile(),
        "validFrom": _timestamp(valid_from),
        "validUntil": _timestamp(valid_from + STATUS_LIST_VALIDITY),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encode_bitstring(revoked),
            "ttl": int(STATUS_LIST_TTL.total_seconds() * 1000),
        },
    }


def _numeric_date(timestamp: str) -> int:
    return int(datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S%z").timestamp())


def sign(document: dict[str, Any], keys: BadgeKeys, *, key_base_url: str) -> str:
    """A credential as a Compact JWS (Open Badges 3.0 §8.2): the header has only `alg`,
    `kid` (a URI that dereferences to the public JWK) and `typ`; the payload is the
    credential itself with `iss`, `jti`, `sub`, `nbf` (and `exp` when it has a
    validUntil) mirroring its issuer, id, subject, validFrom (and validUntil), plus a `vc`
    copy for verifiers of the earlier VC-JWT encoding."""
    claims: dict[str, Any] = {
        **document,
        "iss": document["issuer"]["id"],
        "jti": document["id"],
        "sub": document["credentialSubject"]["id"],
        "nbf": _numeric_date(document["validFrom"]),
        "vc": document,
    }
    if "validUntil" in document:
        claims["exp"] = _numeric_date(document["validUntil"])
    header = {"alg": ALGORITHM, "kid": f"{key_base_url}/{keys.active.kid}", "typ": "JWT"}
    return jwt.encode(header, claims, keys.active, algorithms=[ALGORITHM])
