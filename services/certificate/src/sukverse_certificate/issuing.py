"""Issuing: a certificate, once per (student, workshop), when the facts meet the template."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_certificate import store
from sukverse_certificate.badges import new_identity_salt
from sukverse_certificate.domain import Criteria, meets
from sukverse_certificate.models import Template
from sukverse_common.events.contracts import CertificateIssued
from sukverse_common.events.outbox import Outbox

log = structlog.get_logger(__name__)

# A draw finds a free index with odds of at least one half; losing it to another issuer in
# the same instant is rarer still.
MAX_STATUS_DRAWS = 20


def criteria_of(template: Template) -> Criteria:
    return Criteria(
        min_completion_percent=template.min_completion_percent,
        min_quiz_average=template.min_quiz_average,
        required_quiz_ids=frozenset(uuid.UUID(str(q)) for q in template.required_quiz_ids),
    )


def new_verification_code() -> str:
    """An unguessable code (192 random bits) that names a certificate to verifiers."""
    return secrets.token_urlsafe(24)


async def issue_if_met(
    session: AsyncSession,
    outbox: Outbox,
    *,
    template: Template,
    user_id: uuid.UUID,
    now: datetime,
) -> bool:
    """Issue the student's certificate if they have none and their facts meet the
    template; the certificate and its event commit in the caller's transaction."""
    if await store.has_certificate(session, template.workshop_id, user_id):
        return False
    if not meets(criteria_of(template), await store.facts(session, template.workshop_id, user_id)):
        return False
    certificate_id, code = uuid.uuid4(), new_verification_code()
    values = {
        "id": certificate_id,
        "template_id": template.id,
        "workshop_id": template.workshop_id,
        "user_id": user_id,
        "verification_code": code,
        "title": template.title,
        "body": template.body,
        "issued_at": now,
        "identity_salt": new_identity_salt(),
    }
    for _ in range(MAX_STATUS_DRAWS):
        values["status_index"] = await store.free_status_index(session)
        if await store.insert_certificate(session, values):
            break
        if await store.has_certificate(session, template.workshop_id, user_id):
            return False  # a concurrent issuer got there first
        # A concurrent issuer took the status index drawn: draw again.
    else:
        raise RuntimeError("no free status index after repeated draws")
    await outbox.add(
        session,
        CertificateIssued(
            certificate_id=certificate_id,
            template_id=template.id,
            workshop_id=template.workshop_id,
            user_id=user_id,
            verification_code=code,
            issued_at=now,
        ),
        subject=str(certificate_id),
    )
    log.info(
        "certificate issued",
        certificate_id=str(certificate_id),
        workshop_id=str(template.workshop_id),
    )
    return True


async def evaluate(
    session: AsyncSession,
    outbox: Outbox,
    *,
    workshop_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
) -> None:
    """After a fact about the student changed: issue if the workshop's template is met."""
    await store.lock_workshop(session, workshop_id)
    template = await store.template_of_workshop(session, workshop_id)
    if template is not None:
        await issue_if_met(session, outbox, template=template, user_id=user_id, now=now)


async def evaluate_everyone(
    session: AsyncSession, outbox: Outbox, *, template: Template, now: datetime
) -> int:
    """After a template was created or changed: issue to everyone who already meets it."""
    issued = 0
    for user_id in await store.students_with_facts(session, template.workshop_id):
        issued += await issue_if_met(session, outbox, template=template, user_id=user_id, now=now)
    return issued
