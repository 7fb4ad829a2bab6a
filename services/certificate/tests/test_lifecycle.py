"""Health, the OpenAPI document, migrations, the signing key, and redelivered events."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from typing import Any

from alembic import command

from sukverse_certificate.app import MIGRATIONS
from sukverse_certificate.badges import KEY_FILE_NAME, BadgeKeys
from sukverse_certificate.settings import CertificateSettings
from sukverse_common.db import alembic_config
from sukverse_common.events.bus import Message
from sukverse_common.events.envelope import CloudEvent

ROUTES = {
    ("/templates", "post"): "201",
    ("/templates", "get"): "200",
    ("/templates/{id}", "get"): "200",
    ("/templates/{id}", "patch"): "200",
    ("/certificates", "get"): "200",
    ("/certificates/{id}", "get"): "200",
    ("/certificates/{id}.pdf", "get"): "200",
    ("/certificates/{id}/credential", "get"): "200",
    ("/certificates/{id}/revoke", "post"): "200",
    ("/verify/{code}", "get"): "200",
    ("/.well-known/jwks.json", "get"): "200",
    ("/issuer", "get"): "200",
    ("/keys/{kid}", "get"): "200",
    ("/status-lists/{number}", "get"): "200",
}
PUBLIC = {
    "/verify/{code}",
    "/.well-known/jwks.json",
    "/issuer",
    "/keys/{kid}",
    "/status-lists/{number}",
}


async def test_health_and_readiness(api: Any) -> None:
    assert (await api.client.get("/healthz")).status == 200
    ready = await api.client.get("/readyz")
    assert (await ready.json())["checks"] == {"database": True, "bus": True}


async def test_openapi_documents_every_route(api: Any) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    operations = {
        (path, method): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == set(ROUTES)
    for key, success in ROUTES.items():
        responses = operations[key]["responses"]
        assert success in responses, key
        if key[0] not in PUBLIC:
            assert {"401", "403"} <= set(responses), key
    assert "409" in operations[("/templates", "post")]["responses"]
    params = {p["name"] for p in operations[("/templates", "get")]["parameters"]}
    assert params == {"workshop_id", "external_id", "limit", "cursor"}
    schemas = document["components"]["schemas"]
    assert "external_id" in schemas["TemplateIn"]["properties"]
    assert "external_id" in schemas["TemplateOut"]["properties"]
    assert "external_id" not in schemas["TemplatePatch"]["properties"]
    criteria = schemas["CriteriaIn"]["properties"]["required_quiz_ids"]
    assert criteria["uniqueItems"] is True  # as the service refuses a quiz named twice
    patch = schemas["TemplatePatch"]["properties"]
    assert all("null" not in json.dumps(patch[f]) for f in ("title", "body", "criteria")), patch


async def test_migrations_match_the_models(settings: CertificateSettings) -> None:
    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "head")
    await asyncio.to_thread(command.check, config)


async def test_the_status_migration_gives_issued_certificates_positions_and_salts(
    settings: CertificateSettings,
) -> None:
    """Certificates issued before credentials carried a status get distinct random
    positions in the first status list and salts of their own; their holders' emails are
    unknown until registered again."""
    from datetime import UTC, datetime

    from sqlalchemy import column, insert, select, table

    from sukverse_certificate.badges import STATUS_LIST_SIZE
    from sukverse_certificate.models import Certificate, Person, Template
    from sukverse_common.db import create_engine

    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "c1857985d302")
    engine = create_engine(settings.effective_database_url)
    at, template_id = datetime(2026, 11, 1, tzinfo=UTC), uuid.uuid4()
    old = (  # the columns of that revision only
        "id", "template_id", "workshop_id", "user_id", "verification_code", "title", "body",
        "issued_at",
    )  # fmt: skip
    certificates = table("certificates", *(column(n, Certificate.__table__.c[n].type) for n in old))
    people = table(
        "people", *(column(n, Person.__table__.c[n].type) for n in ("user_id", "full_name"))
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(Template).values(
                    id=template_id,
                    workshop_id=uuid.uuid4(),
                    title="T",
                    body="B",
                    min_completion_percent=100,
                    required_quiz_ids=[],
                    created_at=at,
                    updated_at=at,
                )
            )
            user_ids = [uuid.uuid4() for _ in range(40)]
            await conn.execute(insert(people), [{"user_id": u, "full_name": "P"} for u in user_ids])
            await conn.execute(
                insert(certificates),
                [
                    {
                        "id": uuid.uuid4(),
                        "template_id": template_id,
                        "workshop_id": uuid.uuid4(),
                        "user_id": user_id,
                        "verification_code": f"code-{user_id}",
                        "title": "T",
                        "body": "B",
                        "issued_at": at,
                    }
                    for user_id in user_ids
                ],
            )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(select(Certificate.status_index, Certificate.identity_salt))
            ).all()
            emails = (await conn.execute(select(Person.email))).scalars().all()
        indexes, salts = [r.status_index for r in rows], [r.identity_salt for r in rows]
        assert len(set(indexes)) == len(indexes) == 40
        assert all(0 <= index < STATUS_LIST_SIZE for index in indexes)
        assert indexes != sorted(indexes)  # random, not in issue order
        assert len(set(salts)) == 40 and all(len(salt) == 32 for salt in salts)
        assert emails == [None] * 40
    finally:
        await engine.dispose()


async def test_the_signing_key_is_private_and_kept(api: Any, settings: CertificateSettings) -> None:
    path = settings.data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    published = await (await api.client.get("/.well-known/jwks.json")).json()
    again = BadgeKeys.load_or_create(path).jwks(key_base_url=f"{settings.public_base_url}/keys")
    assert published == again  # the same key after a restart
    [key] = published["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")


def test_a_pkcs1_pem_key_file_signs(tmp_path: Any) -> None:
    """The PKCS#1 PEM that Helm's genPrivateKey "rsa" writes is a key file too."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    path = tmp_path / "badge.pem"
    path.write_bytes(pem)
    keys = BadgeKeys.from_file(path)
    loaded = serialization.load_pem_private_key(keys.active.as_pem(private=True), None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == private.private_numbers()
    [key] = keys.jwks(key_base_url="https://c.example/keys")["keys"]
    assert key["kty"] == "RSA" and "d" not in key


async def test_a_redelivered_event_has_no_second_effect(api: Any) -> None:
    admin = api.account("admin", "admin")
    workshop_id = await api.new_workshop()
    facts = api.facts(workshop_id)
    await api.create_template(admin, workshop_id, min_completion_percent=100)
    student = uuid.uuid4()
    data, key = facts.completed(student)
    envelope = CloudEvent.wrap(data, subject=key)
    for _ in range(3):
        await api.bus.publish([Message(data.topic(), key, envelope)])
    await api.publish_and_wait(facts.substep(uuid.uuid4(), 1))
    issued = await api.wait_events(
        lambda e: e.type == "io.sukverse.certificate.certificate.issued.v1", 1
    )
    assert [e.data["user_id"] for e in issued] == [str(student)]
    assert len(await api.certificates(admin, workshop_id=str(workshop_id))) == 1
