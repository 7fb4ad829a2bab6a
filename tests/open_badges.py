"""A verifier of Open Badges 3.0 credentials for the tests, written from the specifications
rather than from the service: the required fields of an OpenBadgeCredential (Open Badges
3.0, appendix B), its JSON Web Token proof (§8.2), and its W3C Bitstring Status List entry.
Each rule has a name, so that a test can break the rules one at a time and see each caught.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = re.compile(r"^https://purl\.imsglobal\.org/spec/ob/v3p0/context(-3\.\d\.\d)*\.json$")
DATETIME_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
IDENTITY_HASH = re.compile(r"^(sha256\$[0-9a-fA-F]{64}|md5\$[0-9a-fA-F]{32})$")
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
JOSE_HEADERS = {"alg", "kid", "jwk", "typ"}
MINIMUM_ENTRIES = 131_072


def b64json(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def numeric(timestamp: Any) -> int | None:
    """A DateTime as a JWT NumericDate; None for what is not a DateTime."""
    try:
        return int(datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


@dataclass(frozen=True)
class Proof:
    """What the rules look at: the JOSE header, the JWT payload (the credential), the public
    key the `kid` dereferenced to (or the header's `jwk`), whether the signature verifies
    with it, and the time of verification."""

    header: dict[str, Any]
    claims: dict[str, Any]
    key: dict[str, Any] | None
    signed: bool
    now: int

    @property
    def subject(self) -> dict[str, Any]:
        subject: dict[str, Any] = self.claims.get("credentialSubject", {})
        return subject


def _types(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _issuer_id(claims: dict[str, Any]) -> Any:
    issuer = claims.get("issuer")
    return issuer.get("id") if isinstance(issuer, dict) else issuer


def _issuer(claims: dict[str, Any]) -> bool:
    issuer = claims.get("issuer")
    if isinstance(issuer, str):
        return bool(URI.match(issuer))
    return (
        isinstance(issuer, dict)
        and isinstance(issuer.get("id"), str)
        and bool(URI.match(issuer["id"]))
        and "Profile" in _types(issuer.get("type"))
    )


def _achievement(subject: dict[str, Any]) -> bool:
    achievement = subject.get("achievement")
    if not isinstance(achievement, dict):
        return False
    criteria = achievement.get("criteria")
    return (
        isinstance(achievement.get("id"), str)
        and bool(URI.match(achievement["id"]))
        and "Achievement" in _types(achievement.get("type"))
        and isinstance(achievement.get("name"), str)
        and isinstance(achievement.get("description"), str)
        and isinstance(criteria, dict)
        and bool(criteria.get("id") or criteria.get("narrative"))
    )


def _identity(entry: Any) -> bool:
    if not isinstance(entry, dict) or entry.get("type") != "IdentityObject":
        return False
    if not isinstance(entry.get("hashed"), bool) or not isinstance(entry.get("identityType"), str):
        return False
    identity = entry.get("identityHash")
    if not isinstance(identity, str):
        return False
    return not entry["hashed"] or bool(IDENTITY_HASH.match(identity))


def _status_entry(claims: dict[str, Any]) -> bool:
    status = claims.get("credentialStatus")
    if status is None:
        return True
    if not isinstance(status, dict) or not isinstance(status.get("type"), str):
        return False
    if not URI.match(str(status.get("id", ""))):
        return False
    if status["type"] != "BitstringStatusListEntry":
        return True
    index = status.get("statusListIndex")
    url = status.get("statusListCredential")
    return (
        isinstance(status.get("statusPurpose"), str)
        and isinstance(index, str)
        and index.isascii()
        and index.isdigit()
        and isinstance(url, str)
        and url.startswith(("https://", "http://"))
        and status["id"] != url
    )


Rule = Callable[[Proof], bool]

# Each rule holds of a conforming credential. The names say where the specification says
# so: §8.2.3 the JOSE header, §8.2.4 the JWT payload, §8.2.6 its verification; B.1 the
# data model of AchievementCredential, AchievementSubject, Achievement, IdentityObject and
# CredentialStatus; and BSL the Bitstring Status List entry.
RULES: dict[str, Rule] = {
    "8.2.3 alg is RS256": lambda p: p.header.get("alg") == "RS256",
    "8.2.3 kid or jwk names the key": lambda p: "kid" in p.header or "jwk" in p.header,
    "8.2.3 kid is a URI": lambda p: "kid" not in p.header or bool(URI.match(str(p.header["kid"]))),
    "8.2.3 no other JOSE headers": lambda p: set(p.header) <= JOSE_HEADERS,
    "8.2.3 typ is JWT": lambda p: p.header.get("typ", "JWT") == "JWT",
    "8.2.3 the key is public": lambda p: (
        p.key is not None and "d" not in p.key and "d" not in p.header.get("jwk", {})
    ),
    "8.2.6 the signature verifies": lambda p: p.signed,
    "8.2.4 iss is issuer.id": lambda p: (
        "iss" in p.claims and p.claims["iss"] == _issuer_id(p.claims)
    ),
    "8.2.4 sub is credentialSubject.id": lambda p: (
        "sub" in p.claims and p.claims["sub"] == p.subject.get("id")
    ),
    "8.2.4 jti is id": lambda p: "jti" in p.claims and p.claims["jti"] == p.claims.get("id"),
    "8.2.4 nbf is validFrom": lambda p: (
        isinstance(p.claims.get("nbf"), int)
        and p.claims["nbf"] == numeric(p.claims.get("validFrom"))
    ),
    "8.2.6 validFrom has occurred": lambda p: p.claims.get("nbf", p.now + 1) <= p.now,
    "8.2.4 exp is validUntil": lambda p: (
        "validUntil" not in p.claims or p.claims.get("exp") == numeric(p.claims["validUntil"])
    ),
    "8.2.6 not expired": lambda p: p.claims.get("exp", p.now + 1) > p.now,
    "B.1 @context is the VC 2.0 then the OB 3.0 context": lambda p: (
        isinstance(p.claims.get("@context"), list)
        and len(p.claims["@context"]) >= 2
        and p.claims["@context"][0] == VC_CONTEXT
        and bool(OB_CONTEXT.match(str(p.claims["@context"][1])))
    ),
    "B.1 id is a URI": lambda p: bool(URI.match(str(p.claims.get("id", "")))),
    "B.1 type is a VerifiableCredential and an OpenBadgeCredential": lambda p: (
        "VerifiableCredential" in _types(p.claims.get("type"))
        and bool(
            {"OpenBadgeCredential", "AchievementCredential"} & set(_types(p.claims.get("type")))
        )
    ),
    "B.1 issuer is a Profile with an id": lambda p: _issuer(p.claims),
    "B.1 validFrom is a DateTimeZ": lambda p: bool(
        DATETIME_Z.match(str(p.claims.get("validFrom")))
    ),
    "B.1 validUntil is a DateTimeZ": lambda p: (
        "validUntil" not in p.claims or bool(DATETIME_Z.match(str(p.claims["validUntil"])))
    ),
    "B.1 credentialSubject is an AchievementSubject": lambda p: (
        "AchievementSubject" in _types(p.subject.get("type"))
    ),
    "B.1 credentialSubject has an id or an identifier": lambda p: (
        bool(p.subject.get("id")) or bool(p.subject.get("identifier"))
    ),
    "B.1 every identifier is an IdentityObject": lambda p: all(
        _identity(entry) for entry in p.subject.get("identifier", [])
    ),
    "B.1 achievement has id, type, name, description and criteria": lambda p: _achievement(
        p.subject
    ),
    "BSL credentialStatus is a well-formed entry": lambda p: _status_entry(p.claims),
}


def read(token: str, key: dict[str, Any] | None, *, now: datetime | None = None) -> Proof:
    """A compact JWS taken apart, its signature checked with `key` (the dereferenced `kid`)
    or with the header's own `jwk`."""
    head, payload, _ = token.split(".")
    header, claims = b64json(head), b64json(payload)
    key = key if key is not None else header.get("jwk")
    signed = False
    if key is not None:
        try:
            jws.deserialize_compact(token, RSAKey.import_key(key), algorithms=["RS256"])
            signed = True
        except (JoseError, ValueError):
            signed = False
    moment = int((now or datetime.now(UTC)).timestamp())
    return Proof(header=header, claims=claims, key=key, signed=signed, now=moment)


def violations(token: str, key: dict[str, Any] | None, *, now: datetime | None = None) -> list[str]:
    """The names of the rules the credential breaks; none for a conforming one."""
    proof = read(token, key, now=now)
    return [name for name, holds in RULES.items() if not holds(proof)]


def decode_status_list(encoded: str) -> bytes:
    """A Bitstring Status List's `encodedList`: multibase base64url (prefix `u`, no
    padding) of the GZIP-compressed bitstring."""
    if not encoded.startswith("u"):
        raise ValueError("not multibase base64url")
    body = encoded[1:]
    bits = gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if len(bits) * 8 < MINIMUM_ENTRIES:
        raise ValueError("a status list is at least 131,072 entries")
    return bits


def status_bit(
    entry: dict[str, Any], status_list: str, key: dict[str, Any], *, now: datetime | None = None
) -> int:
    """A credential's status from its `credentialStatus` entry and the status list
    credential its `statusListCredential` named, as the Bitstring Status List validation
    algorithm reads it: the list is signed, in its validity period, of the entry's purpose;
    the entry's bit counts from the left-most bit of the first byte."""
    proof = read(status_list, key, now=now)
    assert proof.signed, "the status list credential's signature does not verify"
    document = proof.claims
    assert "BitstringStatusListCredential" in document["type"]
    assert document["id"] == entry["statusListCredential"]
    valid_from, valid_until = numeric(document["validFrom"]), numeric(document["validUntil"])
    assert valid_from is not None and valid_until is not None
    assert valid_from <= proof.now < valid_until
    subject = document["credentialSubject"]
    assert subject["type"] == "BitstringStatusList"
    assert subject["statusPurpose"] == entry["statusPurpose"]
    bits = decode_status_list(subject["encodedList"])
    index = int(entry["statusListIndex"])
    assert index < len(bits) * 8
    return (bits[index // 8] >> (7 - index % 8)) & 1
