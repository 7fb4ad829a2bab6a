"""Open Badges 3.0: the service's RS256 signing key and OpenBadgeCredentials signed as
VC-JWT (Open Badges 3.0 §8.2)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
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


def _timestamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def credential(award: Award, *, issuer_id: str, issuer_name: str, base_url: str) -> dict[str, Any]:
    """The OpenBadgeCredential (a W3C Verifiable Credential 2.0) of an award."""
    subject: dict[str, Any] = {
        "id": f"urn:uuid:{award.user_id}",
        "type": ["AchievementSubject"],
        "achievement": {
            "id": f"{base_url}/achievements/{award.template_id}",
            "type": ["Achievement"],
            "name": award.achievement_name,
            "description": award.achievement_description,
            "criteria": {"narrative": award.criteria_narrative},
        },
    }
    return {
        "@context": CONTEXT,
        "id": f"urn:uuid:{award.certificate_id}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": award.achievement_name,
        "issuer": {"id": issuer_id, "type": ["Profile"], "name": issuer_name},
        "validFrom": _timestamp(award.issued_at),
        "credentialSubject": subject,
    }


def sign(
    document: dict[str, Any], keys: BadgeKeys, *, valid_from: datetime, key_base_url: str
) -> str:
    """The credential as a Compact JWS (Open Badges 3.0 §8.2): the header has only `alg`,
    `kid` (a URI that dereferences to the public JWK) and `typ`; the payload is the
    credential itself with `iss`, `jti`, `sub` and `nbf` mirroring its issuer, id, subject
    and validFrom, plus a `vc` copy for verifiers of the earlier VC-JWT encoding."""
    claims: dict[str, Any] = {
        **document,
        "iss": document["issuer"]["id"],
        "jti": document["id"],
        "sub": document["credentialSubject"]["id"],
        "nbf": int(valid_from.timestamp()),
        "vc": document,
    }
    header = {"alg": ALGORITHM, "kid": f"{key_base_url}/{keys.active.kid}", "typ": "JWT"}
    return jwt.encode(header, claims, keys.active, algorithms=[ALGORITHM])
