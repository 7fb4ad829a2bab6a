"""What the analytics service consumes: workshop, quiz and certificate events, merged into
read models.

Every merge is monotonic (a maximum, or the latest by the event's own time), so that the
same events in any order leave the same rows; the workshop's figures move by the
difference between what a student contributed before and after each event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_analytics import store
from sukverse_analytics.domain import contribution, progress_milli, to_milli
from sukverse_analytics.models import Certificate, QuizGrade, Student
from sukverse_common.events.contracts import (
    CertificateIssued,
    CertificateRevoked,
    EnrollmentCreated,
    EnrollmentWithdrawn,
    EventData,
    QuizAttemptSubmitted,
    QuizPassed,
    StepCompleted,
    SubstepCompleted,
    WorkshopArchived,
    WorkshopCompleted,
    WorkshopCreated,
    WorkshopUpdated,
)
from sukverse_common.events.inbox import EventConsumer, EventContext

consumer = EventConsumer("analytics")
ABOUT_STUDENTS = (
    EnrollmentCreated,
    EnrollmentWithdrawn,
    SubstepCompleted,
    StepCompleted,
    WorkshopCompleted,
    QuizAttemptSubmitted,
    QuizPassed,
)


@consumer.before_handlers
async def lock_students(session: AsyncSession, batch: Sequence[EventData]) -> None:
    """The students a batch is about, read and locked in one query rather than one each."""
    await store.lock_students(
        session,
        (
            (data.workshop_id, data.user_id)
            for data in batch
            if isinstance(data, ABOUT_STUDENTS) and data.workshop_id is not None
        ),
    )


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _later(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


async def _change_student(
    session: AsyncSession,
    workshop_id: uuid.UUID,
    user_id: uuid.UUID,
    at: datetime,
    change: Callable[[Student], None],
) -> Student:
    """Apply `change` to a student's row, record the activity time and move the
    workshop's figures by the difference it made."""
    row = await store.student(session, workshop_id, user_id)
    before = contribution(
        enrolled=bool(row.enrolled),
        completed=bool(row.completed),
        percent_milli=row.percent_milli or 0,
        quiz_count=row.quiz_count or 0,
        quiz_sum_milli=row.quiz_sum_milli or 0,
    )
    change(row)
    row.last_activity = _later(row.last_activity, _utc(at))
    row.percent_milli = progress_milli(
        substeps_done=row.substeps_done or 0,
        substep_count=row.substep_count or 0,
        completed=bool(row.completed),
    )
    after = contribution(
        enrolled=bool(row.enrolled),
        completed=bool(row.completed),
        percent_milli=row.percent_milli,
        quiz_count=row.quiz_count or 0,
        quiz_sum_milli=row.quiz_sum_milli or 0,
    )
    store.add_to_stats(session, workshop_id, after.delta(before))
    return row


# -- workshops ----------------------------------------------------------------------------


async def _describe(
    session: AsyncSession,
    data: WorkshopCreated | WorkshopUpdated,
    at: datetime,
) -> None:
    """The latest description of a workshop wins."""
    await store.ensure_workshop(session, data.workshop_id)
    row = await store.workshop(session, data.workshop_id, lock=True)
    assert row is not None
    if row.changed_at is not None and at <= row.changed_at:
        return
    row.title = data.title
    row.step_count = data.step_count
    row.substep_count = data.substep_count
    row.instructor_ids = sorted(str(instructor) for instructor in data.instructor_ids)
    row.changed_at = at


@consumer.on(WorkshopCreated)
async def workshop_created(ctx: EventContext, data: WorkshopCreated) -> None:
    await _describe(ctx.session, data, _utc(data.created_at))


@consumer.on(WorkshopUpdated)
async def workshop_updated(ctx: EventContext, data: WorkshopUpdated) -> None:
    await _describe(ctx.session, data, _utc(data.updated_at))


@consumer.on(WorkshopArchived)
async def workshop_archived(ctx: EventContext, data: WorkshopArchived) -> None:
    """Archiving is final: the earliest archive time is kept."""
    await store.ensure_workshop(ctx.session, data.workshop_id)
    row = await store.workshop(ctx.session, data.workshop_id, lock=True)
    assert row is not None
    at = _utc(data.archived_at)
    if row.archived_at is None or at < row.archived_at:
        row.archived_at = at


# -- enrollments and progress -------------------------------------------------------------


async def _enrollment(
    ctx: EventContext, workshop_id: uuid.UUID, user_id: uuid.UUID, *, active: bool, at: datetime
) -> None:
    """The latest enrollment change wins; at the same instant a withdrawal does."""
    at = _utc(at)

    def change(row: Student) -> None:
        current = row.enrollment_changed_at
        if current is not None and (at < current or (at == current and not row.enrolled)):
            return
        row.enrolled, row.enrollment_changed_at = active, at

    await _change_student(ctx.session, workshop_id, user_id, at, change)


@consumer.on(EnrollmentCreated)
async def enrollment_created(ctx: EventContext, data: EnrollmentCreated) -> None:
    await _enrollment(ctx, data.workshop_id, data.user_id, active=True, at=data.enrolled_at)


@consumer.on(EnrollmentWithdrawn)
async def enrollment_withdrawn(ctx: EventContext, data: EnrollmentWithdrawn) -> None:
    await _enrollment(ctx, data.workshop_id, data.user_id, active=False, at=data.withdrawn_at)


@consumer.on(SubstepCompleted)
async def substep_completed(ctx: EventContext, data: SubstepCompleted) -> None:
    """Progress only grows: the largest (substeps done, of how many) seen is kept."""

    def change(row: Student) -> None:
        seen = (row.substeps_done or 0, row.substep_count or 0)
        row.substeps_done, row.substep_count = max(seen, (data.substeps_done, data.substep_count))

    await _change_student(ctx.session, data.workshop_id, data.user_id, data.completed_at, change)


@consumer.on(StepCompleted)
async def step_completed(ctx: EventContext, data: StepCompleted) -> None:
    await _change_student(
        ctx.session, data.workshop_id, data.user_id, data.completed_at, lambda _: None
    )


@consumer.on(WorkshopCompleted)
async def workshop_completed(ctx: EventContext, data: WorkshopCompleted) -> None:
    def change(row: Student) -> None:
        row.completed = True

    await _change_student(ctx.session, data.workshop_id, data.user_id, data.completed_at, change)


# -- quizzes ------------------------------------------------------------------------------


@consumer.on(QuizAttemptSubmitted)
async def attempt_submitted(ctx: EventContext, data: QuizAttemptSubmitted) -> None:
    """The grade of the latest attempt at a quiz is the student's grade for it; every
    failed attempt counts once (the inbox sees to that)."""
    if data.workshop_id is None:
        return
    workshop_id = data.workshop_id
    at = _utc(data.submitted_at)
    grade = to_milli(data.grade_percent)
    current = await store.quiz_grade(ctx.session, data.quiz_id, data.user_id)
    previous: int | None = None
    if current is None:
        ctx.session.add(
            QuizGrade(
                quiz_id=data.quiz_id,
                user_id=data.user_id,
                workshop_id=workshop_id,
                grade_milli=grade,
                attempt_number=data.attempt_number,
                submitted_at=at,
            )
        )
        newer = True
    else:
        newer = (at, data.attempt_number, grade) > (
            current.submitted_at,
            current.attempt_number,
            current.grade_milli,
        )
        if newer:
            previous = current.grade_milli
            current.grade_milli, current.attempt_number, current.submitted_at = (
                grade,
                data.attempt_number,
                at,
            )

    def change(row: Student) -> None:
        if not data.passed:
            row.failed_attempts = (row.failed_attempts or 0) + 1
        if not newer:
            return
        if previous is None:
            row.quiz_count = (row.quiz_count or 0) + 1
            row.quiz_sum_milli = (row.quiz_sum_milli or 0) + grade
        else:
            row.quiz_sum_milli = (row.quiz_sum_milli or 0) + grade - previous

    await _change_student(ctx.session, workshop_id, data.user_id, at, change)


@consumer.on(QuizPassed)
async def quiz_passed(ctx: EventContext, data: QuizPassed) -> None:
    if data.workshop_id is None:
        return
    await _change_student(
        ctx.session, data.workshop_id, data.user_id, data.passed_at, lambda _: None
    )


# -- certificates -------------------------------------------------------------------------


async def _change_certificate(
    session: AsyncSession,
    data: CertificateIssued | CertificateRevoked,
    change: Callable[[Certificate], None],
) -> None:
    """Apply `change` to a certificate's row and move its workshop's count of certificates
    in force by the difference it made."""
    row = await store.certificate(session, data.certificate_id, data.workshop_id, data.user_id)
    before = row.counted
    change(row)
    if row.counted != before:
        store.add_to_stats(session, row.workshop_id, {"certificates": 1 if row.counted else -1})


@consumer.on(CertificateIssued)
async def certificate_issued(ctx: EventContext, data: CertificateIssued) -> None:
    """The earliest issue time is kept; a certificate revoked before its issue event came
    never counts."""

    def change(row: Certificate) -> None:
        at = _utc(data.issued_at)
        if row.issued_at is None or at < row.issued_at:
            row.issued_at = at

    await _change_certificate(ctx.session, data, change)


@consumer.on(CertificateRevoked)
async def certificate_revoked(ctx: EventContext, data: CertificateRevoked) -> None:
    """Revocation is final: the earliest revocation time is kept."""

    def change(row: Certificate) -> None:
        at = _utc(data.revoked_at)
        if row.revoked_at is None or at < row.revoked_at:
            row.revoked_at = at

    await _change_certificate(ctx.session, data, change)
