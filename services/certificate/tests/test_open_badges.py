"""The certificate as an Open Badges 3.0 credential others can check: every required field
and every JSON Web Token proof rule (§8.2) held by what the service signs, each rule shown
to be checked by breaking it alone; the holder named and their email hashed with a salt;
and revocation published in a W3C Bitstring Status List that a verifier reads without
calling the service's own verify page."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import RSAKey

from sukverse_certificate.badges import (
    STATUS_LIST_SIZE,
    Award,
    BadgeKeys,
    Issuer,
    credential,
    encode_bitstring,
    identity_hash,
    sign,
)
from tests.open_badges import (
    RULES,
    b64json,
    decode_status_list,
    status_bit,
    violations,
)

BASE = "https://certificates.example.test"
ISSUER = Issuer(id=f"{BASE}/issuer", name="Sukverse", base_url=BASE)


async def _fetch(api: Any, url: str, **kwargs: Any) -> Any:
    """A URL of the service's public base, fetched from the service under test."""
    assert url.startswith(BASE), url
    response = await api.client.get(url.removeprefix(BASE), **kwargs)
    assert response.status == 200, await response.text()
    return response


async def _credential(api: Any, summary: dict[str, Any], student: Any) -> tuple[str, Any]:
    """A certificate's credential and the public key its `kid` dereferences to."""
    path = f"/certificates/{summary['id']}/credential"
    response = await api.client.get(path, headers=student.headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"  # OB 3.0 §5.2
    token = await response.text()
    kid = b64json(token.split(".")[0])["kid"]
    key = await (await _fetch(api, kid)).json()
    assert RSAKey.import_key(key).thumbprint() == kid.rsplit("/", 1)[1]
    return token, key


async def test_the_credential_keeps_every_rule_and_names_its_holder(api: Any) -> None:
    student = api.account("badge-student")
    summary = await api.award(student, name="Alan Turing")
    token, key = await _credential(api, summary, student)
    assert violations(token, key) == []
    jwks = await (await api.client.get("/.well-known/jwks.json")).json()
    assert b64json(token.split(".")[0])["kid"] in {k["kid"] for k in jwks["keys"]}

    claims = b64json(token.split(".")[1])
    assert claims["vc"] == {
        k: v for k, v in claims.items() if k not in {"iss", "jti", "sub", "nbf", "vc"}
    }
    assert claims["issuer"] == {"id": f"{BASE}/issuer", "type": ["Profile"], "name": "Sukverse"}
    assert claims["jti"] == f"urn:uuid:{summary['id']}"
    assert "validUntil" not in claims and "exp" not in claims  # a certificate does not expire
    subject = claims["credentialSubject"]
    assert subject["id"] == claims["sub"] == f"urn:uuid:{student.id}"
    # The email hashed with a salt of this credential's own: a verifier who is told the
    # address checks it, one who is not cannot read it back; and the name in plain text.
    [email, name] = subject["identifier"]
    assert set(email) == {"type", "identityHash", "identityType", "hashed", "salt"}
    assert (email["type"], email["identityType"], email["hashed"]) == (
        "IdentityObject",
        "emailAddress",
        True,
    )
    assert len(email["salt"]) >= 32
    address = f"{student.id}@example.test"
    digest = hashlib.sha256((address + email["salt"]).encode()).hexdigest()
    assert email["identityHash"] == f"sha256${digest}"
    assert address not in json.dumps(claims)
    assert name == {
        "type": "IdentityObject",
        "identityHash": "Alan Turing",
        "identityType": "ext:name",
        "hashed": False,
    }
    achievement = subject["achievement"]
    assert achievement["name"] == "Certificate of Kubernetes Operators"
    assert achievement["criteria"]["narrative"] == (
        "Completed at least 100% of the workshop Kubernetes Operators."
    )
    # The same credential fetched again is the same document: the salt and the status
    # position are the certificate's, not drawn per request.
    again, _ = await _credential(api, summary, student)
    assert b64json(again.split(".")[1]) == claims

    profile = await (await api.client.get("/issuer")).json()
    assert profile["id"] == claims["iss"]


async def test_a_revocation_shows_in_the_status_list_without_asking_the_service(
    api: Any,
) -> None:
    """A verifier holding the credential fetches its `statusListCredential` (public,
    signed, cacheable) and reads its bit: 0 while valid, 1 once revoked; the bits of other
    certificates stay 0."""
    admin = api.account("admin", "admin")
    holder, other = api.account("status-holder"), api.account("status-other")
    revoked_summary = await api.award(holder, name="Holder")
    kept_summary = await api.award(other, name="Other")
    entries = {}
    for summary, student in ((revoked_summary, holder), (kept_summary, other)):
        token, key = await _credential(api, summary, student)
        entries[summary["id"]] = b64json(token.split(".")[1])["credentialStatus"]
    entry = entries[revoked_summary["id"]]
    assert entry["type"] == "BitstringStatusListEntry"
    assert entry["statusPurpose"] == "revocation"
    assert entry["id"] == f"{entry['statusListCredential']}#{entry['statusListIndex']}"
    assert entry["statusListCredential"].startswith(f"{BASE}/status-lists/")
    positions = {(e["statusListCredential"], e["statusListIndex"]) for e in entries.values()}
    assert len(positions) == 2

    async def bits() -> dict[str, int]:
        found = {}
        for certificate_id, status in entries.items():
            response = await _fetch(api, status["statusListCredential"])  # no token: public
            assert response.content_type == "text/plain"
            assert response.headers["Cache-Control"] == "public, max-age=300"
            found[certificate_id] = status_bit(status, await response.text(), key)
        return found

    assert await bits() == {revoked_summary["id"]: 0, kept_summary["id"]: 0}
    response = await api.client.post(
        f"/certificates/{revoked_summary['id']}/revoke",
        json={"reason": "issued in error"},
        headers=admin.headers,
    )
    assert response.status == 200, await response.text()
    assert await bits() == {revoked_summary["id"]: 1, kept_summary["id"]: 0}


async def test_a_status_list_that_does_not_exist_is_a_404(api: Any) -> None:
    for number in ("0", "2", "999999999", "1e3", "-1", "x", "\u0661"):
        response = await api.client.get(f"/status-lists/{number}")
        assert response.status == 404, number
        assert response.content_type == "application/problem+json"


# -- each rule, broken alone ---------------------------------------------------------------


@dataclass
class Case:
    """A credential about to be signed: its header and payload, the key that signs it and
    the one the verifier is given (the dereferenced `kid`)."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_key: RSAKey
    verify_key: dict[str, Any]

    def token(self) -> str:
        payload = json.dumps(self.claims).encode()
        algorithm = self.header["alg"]
        return jws.serialize_compact(self.header, payload, self.signing_key, algorithms=[algorithm])


@pytest.fixture(scope="module")
def keys() -> BadgeKeys:
    return BadgeKeys([RSAKey.generate_key(2048, parameters={"kid": "k1"})])


@pytest.fixture
def case(keys: BadgeKeys) -> Case:
    """A conforming credential signed by the service's own code."""
    award = Award(
        certificate_id=uuid.uuid4(),
        template_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        issued_at=datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC),
        achievement_name="Certificate of Operators",
        achievement_description="Completion of the workshop Operators",
        criteria_narrative="Completed at least 100% of the workshop Operators.",
        recipient_name="Ada Lovelace",
        recipient_email="ada@example.com",
        identity_salt="5a1t",
        status_index=STATUS_LIST_SIZE + 7,
    )
    token = sign(credential(award, ISSUER), keys, key_base_url=f"{BASE}/keys")
    head, payload, _ = token.split(".")
    public = keys.active.as_dict(private=False)
    return Case(b64json(head), b64json(payload), keys.active, public)


def _later(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subject(case: Case) -> dict[str, Any]:
    subject: dict[str, Any] = case.claims["credentialSubject"]
    return subject


def _future(case: Case) -> None:
    case.claims["validFrom"] = _later(1)
    case.claims["nbf"] = int((datetime.now(UTC) + timedelta(days=1)).timestamp())


def _expired(case: Case) -> None:
    case.claims["exp"] = int(datetime.now(UTC).timestamp()) - 60


def _until_without_exp(case: Case) -> None:
    case.claims["validUntil"] = _later(30)


def _bad_until(case: Case) -> None:
    case.claims["validUntil"] = "in thirty days"


def _wrong_alg(case: Case) -> None:
    case.header["alg"] = "RS512"


def _other_signer(case: Case) -> None:
    case.signing_key = RSAKey.generate_key(2048)


def _private_key(case: Case) -> None:
    case.verify_key = case.signing_key.as_dict(private=True)


def _set(*path: str, value: Any) -> Callable[[Case], None]:
    def change(case: Case) -> None:
        target: Any = case.claims
        for name in path[:-1]:
            target = target[name]
        target[path[-1]] = value

    return change


def _drop(*names: str, where: Callable[[Case], dict[str, Any]]) -> Callable[[Case], None]:
    def change(case: Case) -> None:
        for name in names:
            del where(case)[name]

    return change


def _header(name: str, value: Any) -> Callable[[Case], None]:
    def change(case: Case) -> None:
        case.header[name] = value

    return change


BREAKS: dict[str, Callable[[Case], None]] = {
    "8.2.3 alg is RS256": _wrong_alg,
    "8.2.3 kid or jwk names the key": _drop("kid", where=lambda c: c.header),
    "8.2.3 kid is a URI": _header("kid", "key 1"),
    "8.2.3 no other JOSE headers": _header("x5u", f"{BASE}/chain.pem"),
    "8.2.3 typ is JWT": _header("typ", "vc+jwt"),
    "8.2.3 the key is public": _private_key,
    "8.2.6 the signature verifies": _other_signer,
    "8.2.4 iss is issuer.id": _set("iss", value="https://elsewhere.example/issuer"),
    "8.2.4 sub is credentialSubject.id": _set("sub", value=f"urn:uuid:{uuid.uuid4()}"),
    "8.2.4 jti is id": _set("jti", value=f"urn:uuid:{uuid.uuid4()}"),
    "8.2.4 nbf is validFrom": _set("validFrom", value="2026-12-01T10:00:01Z"),
    "8.2.6 validFrom has occurred": _future,
    "8.2.4 exp is validUntil": _until_without_exp,
    "8.2.6 not expired": _expired,
    "B.1 @context is the VC 2.0 then the OB 3.0 context": _set(
        "@context", value=["https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
    ),
    "B.1 id is a URI": _set("id", value="certificate 1"),
    "B.1 type is a VerifiableCredential and an OpenBadgeCredential": _set(
        "type", value=["VerifiableCredential"]
    ),
    "B.1 issuer is a Profile with an id": _set("issuer", "type", value=["Organization"]),
    "B.1 validFrom is a DateTimeZ": _set("validFrom", value="2026-12-01 10:00:00"),
    "B.1 validUntil is a DateTimeZ": _bad_until,
    "B.1 credentialSubject is an AchievementSubject": _set(
        "credentialSubject", "type", value=["Person"]
    ),
    "B.1 credentialSubject has an id or an identifier": _drop("id", "identifier", where=_subject),
    "B.1 every identifier is an IdentityObject": lambda c: _subject(c)["identifier"][0].update(
        identityHash="sha256$not-hex"
    ),
    "B.1 achievement has id, type, name, description and criteria": _drop(
        "criteria", where=lambda c: _subject(c)["achievement"]
    ),
    "BSL credentialStatus is a well-formed entry": _set(
        "credentialStatus", "statusListIndex", value=131079
    ),
}


def test_every_rule_has_a_way_to_break_it() -> None:
    assert set(BREAKS) == set(RULES)


def test_the_signed_credential_keeps_every_rule(case: Case) -> None:
    assert violations(case.token(), case.verify_key) == []
    # validFrom and nbf both drop the issue time's fraction of a second.
    assert case.claims["validFrom"] == "2026-12-01T10:00:00Z"
    assert case.claims["nbf"] == int(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("rule", list(RULES))
def test_a_credential_breaking_one_rule_is_refused_for_it(case: Case, rule: str) -> None:
    broken = copy.deepcopy(case)
    BREAKS[rule](broken)
    assert rule in violations(broken.token(), broken.verify_key)


# -- the parts, against the specifications' own examples ----------------------------------


def test_the_identity_hash_is_the_specifications_example() -> None:
    """Open Badges 3.0 IdentityHash: 'a@example.com' salted with 'Kosher'."""
    assert identity_hash("a@example.com", "Kosher") == (
        "sha256$b5809d8a92f8858436d7e6b87c12ebc0ae1eac4baecc2c0b913aee2c922ef399"
    )


def test_the_bitstring_counts_from_the_left_most_bit() -> None:
    positions = {0, 7, 8, 1000, STATUS_LIST_SIZE - 1}
    bits = decode_status_list(encode_bitstring(positions))
    assert len(bits) * 8 == STATUS_LIST_SIZE
    assert (bits[0], bits[1], bits[-1]) == (0b1000_0001, 0b1000_0000, 0b0000_0001)
    found = {i for i in range(STATUS_LIST_SIZE) if bits[i // 8] >> (7 - i % 8) & 1}
    assert found == positions
    assert encode_bitstring(positions) == encode_bitstring(sorted(positions))  # stable bytes
    # The Bitstring Status List specification's example: an empty list of 131,072 entries.
    example = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
    assert decode_status_list(example) == decode_status_list(encode_bitstring([]))
