"""Use cases of the certificate service: each owns its transaction and writes its events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_certificate import store
from sukverse_certificate.badges import (
    CONTEXT,
    Award,
    BadgeKeys,
    Issuer,
    credential,
    sign,
    status_list_credential,
)
from sukverse_certificate.domain import narrative, render
from sukverse_certificate.issuing import criteria_of, evaluate_everyone
from sukverse_certificate.models import EXTERNAL_KEY_INDEX, Certificate, Template
from sukverse_certificate.schemas import (
    CertificateOut,
    CertificateSummary,
    CriteriaIn,
    CriteriaOut,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
    VerificationOut,
)
from sukverse_certificate.settings import CertificateSettings
from sukverse_certificate.workshops import WorkshopLookup
from sukverse_common.db import Database
from sukverse_common.errors import Conflict, Forbidden, NotFound, Problem, ValidationFailed
from sukverse_common.events.contracts import CertificateRevoked
from sukverse_common.events.outbox import Outbox
from sukverse_common.security import Principal

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
NO_TEMPLATE = "no such template"
NO_CERTIFICATE = "no such certificate"
MAX_CODE_CHARS = 64


class Gone(Problem):
    status, slug, title = 410, "revoked", "The certificate was revoked"


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_staff(caller: Principal) -> bool:
    """Admins and machine clients (the operator) manage every template and certificate."""
    return "admin" in caller.roles or caller.is_machine


def _refused_external_key(exc: IntegrityError) -> bool:
    """Whether the unique index of external keys refused a template, rather than the one
    template per workshop: PostgreSQL names the index, SQLite its columns."""
    message = str(exc.orig)
    return EXTERNAL_KEY_INDEX in message or "templates.external_id" in message


def template_out(template: Template) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        workshop_id=template.workshop_id,
        external_id=template.external_id,
        title=template.title,
        body=template.body,
        criteria=CriteriaOut(
            min_completion_percent=template.min_completion_percent,
            min_quiz_average=template.min_quiz_average,
            required_quiz_ids=[uuid.UUID(str(q)) for q in template.required_quiz_ids],
        ),
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def _set_criteria(template: Template, criteria: CriteriaIn) -> None:
    template.min_completion_percent = criteria.min_completion_percent
    template.min_quiz_average = criteria.min_quiz_average
    template.required_quiz_ids = [str(q) for q in criteria.required_quiz_ids]


def summary(certificate: Certificate) -> CertificateSummary:
    return CertificateSummary(
        id=certificate.id,
        template_id=certificate.template_id,
        workshop_id=certificate.workshop_id,
        user_id=certificate.user_id,
        verification_code=certificate.verification_code,
        status="revoked" if certificate.revoked_at else "valid",
        issued_at=certificate.issued_at,
    )


class CertificateService:
    """Templates, certificates and their renderings."""

    def __init__(
        self,
        *,
        settings: CertificateSettings,
        database: Database,
        outbox: Outbox,
        keys: BadgeKeys,
        workshops: WorkshopLookup,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.database = database
        self.outbox = outbox
        self.keys = keys
        self.workshops = workshops
        self.clock = clock
        self.base_url = settings.public_base_url.rstrip("/")
        self.issuer = Issuer(
            id=f"{self.base_url}/issuer", name=settings.issuer_name, base_url=self.base_url
        )

    # -- templates -----------------------------------------------------------------------

    async def _may_manage(
        self, session: AsyncSession, caller: Principal, workshop_id: uuid.UUID
    ) -> bool:
        if is_staff(caller):
            return True
        return caller.user_id is not None and await store.teaches(
            session, workshop_id, caller.user_id
        )

    async def create_template(
        self, caller: Principal, body: TemplateIn, *, authorization: str
    ) -> TemplateOut:
        """`authorization` is the caller's own, to ask the workshop service about a workshop
        this one has not heard of (only staff may define such a template: an instructor's
        workshops are the ones heard of)."""
        if is_staff(caller):
            async with self.database.sessions() as session:
                heard_of = await store.workshop_title(session, body.workshop_id) is not None
            if not heard_of and not await self.workshops.exists(
                body.workshop_id, authorization=authorization
            ):
                raise ValidationFailed(
                    errors=[{"field": "workshop_id", "reason": "no such workshop"}]
                )
        now = self.clock()
        async with self.database.sessions() as session, session.begin():
            await store.lock_workshop(session, body.workshop_id)
            if not await self._may_manage(session, caller, body.workshop_id):
                raise Forbidden("only the workshop's instructors and admins define its certificate")
            if await store.template_of_workshop(session, body.workshop_id) is not None:
                raise Conflict("the workshop has a certificate template already: change that one")
            template = Template(
                id=uuid.uuid4(),
                workshop_id=body.workshop_id,
                external_id=body.external_id,
                external_owner=caller.subject if body.external_id is not None else None,
                title=body.title,
                body=body.body,
                created_by=caller.user_id,
                created_at=now,
                updated_at=now,
            )
            _set_criteria(template, body.criteria)
            session.add(template)
            try:
                await session.flush()
            except IntegrityError as exc:
                if _refused_external_key(exc):
                    raise Conflict(
                        "you already have a template with this external_id",
                        errors=[
                            {
                                "field": "external_id",
                                "reason": "a template of yours has the external_id "
                                f"{body.external_id!r}",
                            }
                        ],
                    ) from None
                raise Conflict("the workshop has a certificate template already") from None
            issued = await evaluate_everyone(session, self.outbox, template=template, now=now)
        log.info("template created", template_id=str(template.id), issued=issued)
        return template_out(template)

    async def _template(
        self, session: AsyncSession, caller: Principal, template_id: uuid.UUID
    ) -> Template:
        template = await session.get(Template, template_id)
        if template is None or not await self._may_manage(session, caller, template.workshop_id):
            raise NotFound(NO_TEMPLATE)
        return template

    async def template(self, caller: Principal, template_id: uuid.UUID) -> TemplateOut:
        async with self.database.sessions() as session:
            return template_out(await self._template(session, caller, template_id))

    async def update_template(
        self, caller: Principal, template_id: uuid.UUID, body: TemplatePatch
    ) -> TemplateOut:
        now = self.clock()
        changes = body.model_fields_set
        async with self.database.sessions() as session, session.begin():
            template = await self._template(session, caller, template_id)
            await store.lock_workshop(session, template.workshop_id)
            for field in ("title", "body", "criteria"):
                if field in changes and getattr(body, field) is None:
                    raise ValidationFailed(errors=[{"field": field, "reason": "must not be null"}])
            if body.title is not None:
                template.title = body.title
            if body.body is not None:
                template.body = body.body
            if body.criteria is not None:
                _set_criteria(template, body.criteria)
            template.updated_at = now
            await session.flush()
            issued = await evaluate_everyone(session, self.outbox, template=template, now=now)
        log.info("template changed", template_id=str(template.id), issued=issued)
        return template_out(template)

    async def templates(
        self,
        caller: Principal,
        *,
        workshop_id: uuid.UUID | None,
        external_id: str | None,
        cursor: uuid.UUID | None,
        limit: int,
    ) -> tuple[list[TemplateOut], str | None]:
        """The templates the caller may see; with an `external_id`, only the one the caller
        itself created with it (another client's keys are never matched)."""
        async with self.database.sessions() as session:
            found = list(
                await store.list_templates(
                    session,
                    everything=is_staff(caller),
                    instructor_id=caller.user_id,
                    workshop_id=workshop_id,
                    external_key=None if external_id is None else (caller.subject, external_id),
                    after=cursor,
                    limit=limit + 1,
                )
            )
        more = len(found) > limit
        found = found[:limit]
        return [template_out(t) for t in found], str(found[-1].id) if more else None

    # -- certificates --------------------------------------------------------------------

    async def certificates(
        self,
        caller: Principal,
        *,
        user_id: uuid.UUID | None,
        workshop_id: uuid.UUID | None,
        cursor: uuid.UUID | None,
        limit: int,
    ) -> tuple[list[CertificateSummary], str | None]:
        async with self.database.sessions() as session:
            found = list(
                await store.list_certificates(
                    session,
                    everything=is_staff(caller),
                    viewer_id=caller.user_id,
                    user_id=user_id,
                    workshop_id=workshop_id,
                    after=cursor,
                    limit=limit + 1,
                )
            )
        more = len(found) > limit
        found = found[:limit]
        return [summary(c) for c in found], str(found[-1].id) if more else None

    async def _visible(
        self, session: AsyncSession, caller: Principal, certificate_id: uuid.UUID
    ) -> Certificate:
        """The certificate if the caller may see it: its holder, the workshop's
        instructors, staff; anyone else learns nothing of it (404)."""
        certificate = await session.get(Certificate, certificate_id)
        if certificate is None:
            raise NotFound(NO_CERTIFICATE)
        if is_staff(caller) or certificate.user_id == caller.user_id:
            return certificate
        if caller.user_id is not None and await store.teaches(
            session, certificate.workshop_id, caller.user_id
        ):
            return certificate
        raise NotFound(NO_CERTIFICATE)

    def verify_url(self, code: str) -> str:
        return f"{self.base_url}/verify/{code}"

    async def _names(self, session: AsyncSession, certificate: Certificate) -> tuple[str, str]:
        name = await store.name_of(session, certificate.user_id)
        workshop = await store.workshop_title(session, certificate.workshop_id)
        # Until the workshop's and the person's events arrive, their ids stand in.
        return name or str(certificate.user_id), workshop or str(certificate.workshop_id)

    @staticmethod
    def _values(certificate: Certificate, name: str, workshop: str) -> dict[str, str]:
        """What the placeholders of a certificate's title and text stand for."""
        return {
            "name": name,
            "workshop": workshop,
            "date": certificate.issued_at.date().isoformat(),
            "id": str(certificate.id),
        }

    async def _full(self, session: AsyncSession, certificate: Certificate) -> CertificateOut:
        name, workshop = await self._names(session, certificate)
        values = self._values(certificate, name, workshop)
        return CertificateOut(
            **summary(certificate).model_dump(),
            name=name,
            workshop=workshop,
            title=render(certificate.title, values),
            body=render(certificate.body, values),
            verify_url=self.verify_url(certificate.verification_code),
            revoked_at=certificate.revoked_at,
            revoked_reason=certificate.revoked_reason,
        )

    async def certificate(self, caller: Principal, certificate_id: uuid.UUID) -> CertificateOut:
        async with self.database.sessions() as session:
            return await self._full(session, await self._visible(session, caller, certificate_id))

    async def revoke(
        self, caller: Principal, certificate_id: uuid.UUID, reason: str
    ) -> CertificateOut:
        """Revoke a certificate (admins); revoking it again changes nothing."""
        now = self.clock()
        async with self.database.sessions() as session, session.begin():
            certificate = await self._visible(session, caller, certificate_id)
            if not is_staff(caller):
                raise Forbidden("only admins revoke certificates")
            if certificate.revoked_at is None:
                certificate.revoked_at, certificate.revoked_reason = now, reason
                certificate.revoked_by = caller.user_id
                await self.outbox.add(
                    session,
                    CertificateRevoked(
                        certificate_id=certificate.id,
                        workshop_id=certificate.workshop_id,
                        user_id=certificate.user_id,
                        reason=reason,
                        revoked_by=caller.user_id,
                        revoked_at=now,
                    ),
                    subject=str(certificate.id),
                )
                log.info("certificate revoked", certificate_id=str(certificate.id))
            return await self._full(session, certificate)

    async def verify(self, code: str) -> VerificationOut:
        """Public: the status of a code with the holder's name, the workshop and the date."""
        if not code or len(code) > MAX_CODE_CHARS or "\x00" in code:
            return VerificationOut(status="unknown")
        async with self.database.sessions() as session:
            certificate = await store.certificate_by_code(session, code)
            if certificate is None:
                return VerificationOut(status="unknown")
            name, workshop = await self._names(session, certificate)
        return VerificationOut(
            status="revoked" if certificate.revoked_at else "valid",
            name=name,
            workshop=workshop,
            issued_on=certificate.issued_at.date(),
        )

    async def pdf(self, caller: Principal, certificate_id: uuid.UUID) -> bytes:
        async with self.database.sessions() as session:
            certificate = await self._visible(session, caller, certificate_id)
            full = await self._full(session, certificate)
        # The PDF libraries are loaded with the first PDF, not with the service: most
        # processes never draw one, and they take longer to load (0.17 s) than the app.
        from sukverse_certificate.pdf import Printable, markdown_literal, render_pdf

        # The template's text is Markdown; the names filled into it are not.
        values = self._values(certificate, full.name, full.workshop)
        literal = {key: markdown_literal(value) for key, value in values.items()}
        return render_pdf(
            Printable(
                title=full.title,
                body=render(certificate.body, literal),
                name=full.name,
                workshop=full.workshop,
                issued_on=full.issued_at.date().isoformat(),
                verify_url=full.verify_url,
                code=full.verification_code,
            )
        )

    async def credential(self, caller: Principal, certificate_id: uuid.UUID) -> str:
        """The certificate as a signed OpenBadgeCredential (VC-JWT); none once revoked."""
        async with self.database.sessions() as session:
            certificate = await self._visible(session, caller, certificate_id)
            full = await self._full(session, certificate)
            template = await session.get(Template, certificate.template_id)
            # Only what the holder registered: no id standing in for an unknown name.
            person = await store.person_of(session, certificate.user_id)
        if full.status == "revoked":
            raise Gone("a revoked certificate has no credential")
        assert template is not None  # a certificate's template is never deleted
        award = Award(
            certificate_id=full.id,
            template_id=full.template_id,
            user_id=full.user_id,
            issued_at=full.issued_at,
            achievement_name=full.title,
            achievement_description=f"Completion of the workshop {full.workshop}",
            criteria_narrative=narrative(criteria_of(template), workshop=full.workshop),
            recipient_name=person.full_name if person else None,
            recipient_email=person.email if person else None,
            identity_salt=certificate.identity_salt,
            status_index=certificate.status_index,
        )
        return sign(credential(award, self.issuer), self.keys, key_base_url=self.key_base_url)

    async def status_list(self, number: int) -> str:
        """Public: revocation status list `number` (from 1) as a signed
        BitstringStatusListCredential (VC-JWT)."""
        async with self.database.sessions() as session:
            if not 1 <= number <= await store.status_lists(session):
                raise NotFound("no such status list")
            revoked = await store.revoked_positions(session, number)
        document = status_list_credential(number, revoked, self.issuer, now=self.clock())
        return sign(document, self.keys, key_base_url=self.key_base_url)

    @property
    def key_base_url(self) -> str:
        return f"{self.base_url}/keys"

    def jwks(self) -> dict[str, object]:
        return self.keys.jwks(key_base_url=self.key_base_url)

    def public_key(self, thumbprint: str) -> dict[str, object]:
        key = self.keys.public_key(thumbprint)
        if key is None:
            raise NotFound("no such key")
        return key

    def issuer_profile(self) -> dict[str, object]:
        return {"@context": CONTEXT, **self.issuer.profile()}
