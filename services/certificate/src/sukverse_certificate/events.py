"""What the certificate service consumes: progress and quiz facts per (student, workshop),
workshops' titles and instructors, and people's names; each fact change may issue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sukverse_certificate import store
from sukverse_certificate.issuing import evaluate
from sukverse_certificate.models import Completion, Person, QuizGrade, QuizPass
from sukverse_common.events.contracts import (
    QuizAttemptSubmitted,
    QuizPassed,
    SubstepCompleted,
    UserRegistered,
    WorkshopCompleted,
    WorkshopCreated,
    WorkshopUpdated,
)
from sukverse_common.events.inbox import EventConsumer, EventContext

consumer = EventConsumer("certificate")


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


async def _changed(ctx: EventContext, workshop_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await evaluate(
        ctx.session, ctx.outbox, workshop_id=workshop_id, user_id=user_id, now=datetime.now(UTC)
    )


async def _completion(
    ctx: EventContext, workshop_id: uuid.UUID, user_id: uuid.UUID, percent: float
) -> None:
    """Completion only grows: the highest percentage seen wins, in any order."""
    percent = min(100.0, max(0.0, percent))
    row = await ctx.session.get(Completion, (workshop_id, user_id))
    if row is None:
        ctx.session.add(Completion(workshop_id=workshop_id, user_id=user_id, percent=percent))
    elif percent > row.percent:
        row.percent = percent
    else:
        return
    await _changed(ctx, workshop_id, user_id)


@consumer.on(SubstepCompleted)
async def substep_completed(ctx: EventContext, data: SubstepCompleted) -> None:
    if data.substep_count > 0:
        percent = 100.0 * data.substeps_done / data.substep_count
        await _completion(ctx, data.workshop_id, data.user_id, percent)


@consumer.on(WorkshopCompleted)
async def workshop_completed(ctx: EventContext, data: WorkshopCompleted) -> None:
    await _completion(ctx, data.workshop_id, data.user_id, 100.0)


@consumer.on(QuizAttemptSubmitted)
async def attempt_submitted(ctx: EventContext, data: QuizAttemptSubmitted) -> None:
    """A quiz's grade: the one after the latest submitted attempt wins."""
    if data.workshop_id is None:
        return
    at = _utc(data.submitted_at)
    row = await ctx.session.get(QuizGrade, (data.quiz_id, data.user_id))
    if row is None:
        ctx.session.add(
            QuizGrade(
                quiz_id=data.quiz_id,
                user_id=data.user_id,
                workshop_id=data.workshop_id,
                grade_percent=data.grade_percent,
                submitted_at=at,
            )
        )
    elif at >= row.submitted_at:
        changed = data.grade_percent != row.grade_percent
        row.grade_percent, row.submitted_at = data.grade_percent, at
        if not changed:
            return
    else:
        return
    await _changed(ctx, data.workshop_id, data.user_id)


@consumer.on(QuizPassed)
async def quiz_passed(ctx: EventContext, data: QuizPassed) -> None:
    if data.workshop_id is None:
        return
    if await ctx.session.get(QuizPass, (data.quiz_id, data.user_id)) is not None:
        return
    ctx.session.add(
        QuizPass(quiz_id=data.quiz_id, user_id=data.user_id, workshop_id=data.workshop_id)
    )
    await _changed(ctx, data.workshop_id, data.user_id)


@consumer.on(WorkshopCreated)
async def workshop_created(ctx: EventContext, data: WorkshopCreated) -> None:
    await store.replace_workshop(
        ctx.session,
        workshop_id=data.workshop_id,
        title=data.title,
        instructor_ids=data.instructor_ids,
        at=_utc(data.created_at),
    )


@consumer.on(WorkshopUpdated)
async def workshop_updated(ctx: EventContext, data: WorkshopUpdated) -> None:
    await store.replace_workshop(
        ctx.session,
        workshop_id=data.workshop_id,
        title=data.title,
        instructor_ids=data.instructor_ids,
        at=_utc(data.updated_at),
    )


@consumer.on(UserRegistered)
async def user_registered(ctx: EventContext, data: UserRegistered) -> None:
    person = await ctx.session.get(Person, data.user_id)
    if person is None:
        person = Person(user_id=data.user_id)
        ctx.session.add(person)
    person.full_name, person.email = data.full_name[:200], data.email[:320]
