"""The contracts: a versioned pydantic model for the `data` of every event, in one place."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """Base of every contract; `event_type` is `io.sukverse.<service>.<event>.v<N>`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    aggregate_type: ClassVar[str]

    # Cached per contract: they are read for every event written to an outbox.
    @classmethod
    @functools.cache
    def service(cls) -> str:
        return cls.event_type.split(".")[2]

    @classmethod
    @functools.cache
    def source(cls) -> str:
        return f"/sukverse/{cls.service()}"

    @classmethod
    @functools.cache
    def topic(cls) -> str:
        return topic_of(cls.service())


def topic_of(service: str) -> str:
    """One topic per producing service."""
    return f"sukverse.{service}"


# -- auth ---------------------------------------------------------------------------------


class UserRegistered(EventData):
    event_type = "io.sukverse.auth.user.registered.v1"
    aggregate_type = "user"

    user_id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    registered_at: datetime


class UserRolesChanged(EventData):
    event_type = "io.sukverse.auth.user.roles_changed.v1"
    aggregate_type = "user"

    user_id: uuid.UUID
    roles: list[str]
    previous_roles: list[str]
    changed_by: uuid.UUID | None


class UserStatusChanged(EventData):
    """An administrator disabled an account (it can no longer log in, refresh or use its
    tokens) or enabled it again."""

    event_type = "io.sukverse.auth.user.status_changed.v1"
    aggregate_type = "user"

    user_id: uuid.UUID
    active: bool
    changed_by: uuid.UUID | None
    changed_at: datetime


class TokensRevoked(EventData):
    """Access tokens that must stop working before they expire: with a `session_id`, every
    token of that session (a logout, a reused refresh token); with a `generation`, every
    token of the user from an earlier generation (logout everywhere, a role taken away,
    the account disabled), the tokens issued since carrying this one. Every service's token
    verifier applies it, each replica on its own."""

    event_type = "io.sukverse.auth.user.tokens_revoked.v1"
    aggregate_type = "user"

    @classmethod
    @functools.cache
    def topic(cls) -> str:
        """A topic of its own, which every replica of every service reads whole: the rest
        of auth's events (registrations carry emails) are none of their business."""
        return f"{topic_of(cls.service())}.revocations"

    user_id: uuid.UUID
    session_id: uuid.UUID | None
    generation: int | None
    reason: Literal["logout", "refresh_reused", "roles_removed", "disabled"]
    revoked_at: datetime


# -- workshop -----------------------------------------------------------------------------
# Workshop events are keyed by the workshop id; enrollment and progress events by the
# enrollment id, so that one student's progress in one workshop stays in order.


class WorkshopCreated(EventData):
    event_type = "io.sukverse.workshop.workshop.created.v1"
    aggregate_type = "workshop"

    workshop_id: uuid.UUID
    title: str
    instructor_ids: list[uuid.UUID]
    step_count: int
    substep_count: int
    created_by: uuid.UUID | None
    created_at: datetime


class WorkshopUpdated(EventData):
    event_type = "io.sukverse.workshop.workshop.updated.v1"
    aggregate_type = "workshop"

    workshop_id: uuid.UUID
    title: str
    instructor_ids: list[uuid.UUID]
    step_count: int
    substep_count: int
    updated_by: uuid.UUID | None
    updated_at: datetime


class WorkshopArchived(EventData):
    event_type = "io.sukverse.workshop.workshop.archived.v1"
    aggregate_type = "workshop"

    workshop_id: uuid.UUID
    archived_by: uuid.UUID | None
    archived_at: datetime


class EnrollmentCreated(EventData):
    event_type = "io.sukverse.workshop.enrollment.created.v1"
    aggregate_type = "enrollment"

    enrollment_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    enrolled_by: uuid.UUID | None
    enrolled_at: datetime


class EnrollmentWithdrawn(EventData):
    event_type = "io.sukverse.workshop.enrollment.withdrawn.v1"
    aggregate_type = "enrollment"

    enrollment_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    withdrawn_by: uuid.UUID | None
    withdrawn_at: datetime


class SubstepCompleted(EventData):
    """`substeps_done` of `substep_count` is the student's progress once this substep is done."""

    event_type = "io.sukverse.workshop.substep.completed.v1"
    aggregate_type = "enrollment"

    enrollment_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    step_id: uuid.UUID
    substep_id: uuid.UUID
    substeps_done: int
    substep_count: int
    completed_at: datetime


class StepCompleted(EventData):
    event_type = "io.sukverse.workshop.step.completed.v1"
    aggregate_type = "enrollment"

    enrollment_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    step_id: uuid.UUID
    completed_at: datetime


class WorkshopCompleted(EventData):
    event_type = "io.sukverse.workshop.workshop.completed.v1"
    aggregate_type = "enrollment"

    enrollment_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    completed_at: datetime


# -- quiz ---------------------------------------------------------------------------------
# Keyed by the quiz id, so that one student's attempts at one quiz stay in order.


class QuizAttemptSubmitted(EventData):
    """One submitted attempt; `grade_percent` is the student's grade for the quiz after it,
    by the quiz's grading method (highest, latest or average)."""

    event_type = "io.sukverse.quiz.attempt.submitted.v1"
    aggregate_type = "quiz"

    attempt_id: uuid.UUID
    quiz_id: uuid.UUID
    workshop_id: uuid.UUID | None
    user_id: uuid.UUID
    attempt_number: int
    score: float
    max_score: float
    percent: float
    passed: bool
    late: bool
    grade_percent: float
    submitted_at: datetime


class QuizPassed(EventData):
    """The first time a student passes a quiz."""

    event_type = "io.sukverse.quiz.quiz.passed.v1"
    aggregate_type = "quiz"

    quiz_id: uuid.UUID
    workshop_id: uuid.UUID | None
    user_id: uuid.UUID
    attempt_id: uuid.UUID
    percent: float
    passed_at: datetime


# -- certificate --------------------------------------------------------------------------
# Keyed by the certificate id.


class CertificateIssued(EventData):
    """A certificate issued to a student whose facts met the workshop's template."""

    event_type = "io.sukverse.certificate.certificate.issued.v1"
    aggregate_type = "certificate"

    certificate_id: uuid.UUID
    template_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    verification_code: str
    issued_at: datetime


class CertificateRevoked(EventData):
    event_type = "io.sukverse.certificate.certificate.revoked.v1"
    aggregate_type = "certificate"

    certificate_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    reason: str
    revoked_by: uuid.UUID | None
    revoked_at: datetime


CONTRACTS: dict[str, type[EventData]] = {
    contract.event_type: contract
    for contract in (
        UserRegistered,
        UserRolesChanged,
        UserStatusChanged,
        TokensRevoked,
        WorkshopCreated,
        WorkshopUpdated,
        WorkshopArchived,
        EnrollmentCreated,
        EnrollmentWithdrawn,
        SubstepCompleted,
        StepCompleted,
        WorkshopCompleted,
        QuizAttemptSubmitted,
        QuizPassed,
        CertificateIssued,
        CertificateRevoked,
    )
}
