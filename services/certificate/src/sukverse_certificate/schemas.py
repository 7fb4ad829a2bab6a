"""Request and response bodies of the certificate service."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from sukverse_certificate.domain import PLACEHOLDERS, unknown_placeholders
from sukverse_common.api import (
    ExternalId,
    IdCursor,
    NotBlank,
    RequestSchema,
    Schema,
    unset,
)

MAX_REQUIRED_QUIZZES = 100
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Title = Annotated[str, StringConstraints(max_length=200), NotBlank]
Body = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
Cursor = Annotated[str, StringConstraints(max_length=100)]


class CriteriaIn(RequestSchema):
    """What a student must reach: `min_quiz_average` null asks nothing of quiz grades."""

    min_completion_percent: Percent = 100.0
    min_quiz_average: Percent | None = None
    required_quiz_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=MAX_REQUIRED_QUIZZES,
        json_schema_extra={"uniqueItems": True},
    )

    @field_validator("required_quiz_ids")
    @classmethod
    def _distinct(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(value)) != len(value):
            raise ValueError("must not name a quiz twice")
        return value


def _known_placeholders(text: str) -> str:
    unknown = unknown_placeholders(text)
    if unknown:
        known = ", ".join("{" + name + "}" for name in sorted(PLACEHOLDERS))
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; the known ones are {known}")
    return text


class TemplateIn(RequestSchema):
    """A workshop's certificate; `external_id` names at most one template of the caller's."""

    workshop_id: uuid.UUID
    external_id: ExternalId | None = None
    title: Title
    body: Body
    criteria: CriteriaIn = Field(default_factory=CriteriaIn)

    @field_validator("title", "body")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return _known_placeholders(value)


class TemplatePatch(RequestSchema):
    title: Title | None = unset()
    body: Body | None = unset()
    criteria: CriteriaIn | None = unset()

    @field_validator("title", "body")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        return None if value is None else _known_placeholders(value)


class CriteriaOut(Schema):
    min_completion_percent: float
    min_quiz_average: float | None
    required_quiz_ids: list[uuid.UUID]


class TemplateOut(Schema):
    id: uuid.UUID
    workshop_id: uuid.UUID
    external_id: str | None
    title: str
    body: str
    criteria: CriteriaOut
    created_at: datetime
    updated_at: datetime


class TemplatesQuery(RequestSchema):
    workshop_id: uuid.UUID | None = None
    external_id: ExternalId | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: IdCursor | None = None


class CertificatesQuery(RequestSchema):
    user_id: uuid.UUID | None = None
    workshop_id: uuid.UUID | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: IdCursor | None = None


Status = Literal["valid", "revoked"]


class CertificateSummary(Schema):
    id: uuid.UUID
    template_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    verification_code: str
    status: Status
    issued_at: datetime


class CertificateOut(CertificateSummary):
    """A certificate with its text filled in for its holder."""

    name: str
    workshop: str
    title: str
    body: str
    verify_url: str
    revoked_at: datetime | None
    revoked_reason: str | None


class RevokeIn(RequestSchema):
    reason: Annotated[str, StringConstraints(max_length=500), NotBlank]


class VerificationOut(Schema):
    """What anyone may learn from a verification code: nothing beyond name, workshop, date."""

    status: Literal["valid", "revoked", "unknown"]
    name: str | None = None
    workshop: str | None = None
    issued_on: date | None = None
