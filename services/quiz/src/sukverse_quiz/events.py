"""What the quiz service consumes: the workshop service's enrollments and instructors,
kept as replicas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sukverse_common.events.contracts import (
    EnrollmentCreated,
    EnrollmentWithdrawn,
    WorkshopCreated,
    WorkshopUpdated,
)
from sukverse_common.events.inbox import EventConsumer, EventContext
from sukverse_quiz import store
from sukverse_quiz.models import Enrollment

consumer = EventConsumer("quiz")


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


async def _apply(
    ctx: EventContext,
    *,
    workshop_id: uuid.UUID,
    user_id: uuid.UUID,
    enrollment_id: uuid.UUID,
    active: bool,
    at: datetime,
) -> None:
    """The latest change per (workshop, student) wins, whatever order events arrive in."""
    at = _utc(at)
    row = await store.enrollment(ctx.session, workshop_id, user_id)
    if row is None:
        ctx.session.add(
            Enrollment(
                workshop_id=workshop_id,
                user_id=user_id,
                enrollment_id=enrollment_id,
                active=active,
                changed_at=at,
            )
        )
        return
    if at < row.changed_at or (at == row.changed_at and not row.active):
        return
    row.enrollment_id, row.active, row.changed_at = enrollment_id, active, at


@consumer.on(EnrollmentCreated)
async def enrollment_created(ctx: EventContext, data: EnrollmentCreated) -> None:
    await _apply(
        ctx,
        workshop_id=data.workshop_id,
        user_id=data.user_id,
        enrollment_id=data.enrollment_id,
        active=True,
        at=data.enrolled_at,
    )


@consumer.on(EnrollmentWithdrawn)
async def enrollment_withdrawn(ctx: EventContext, data: EnrollmentWithdrawn) -> None:
    await _apply(
        ctx,
        workshop_id=data.workshop_id,
        user_id=data.user_id,
        enrollment_id=data.enrollment_id,
        active=False,
        at=data.withdrawn_at,
    )


@consumer.on(WorkshopCreated)
async def workshop_created(ctx: EventContext, data: WorkshopCreated) -> None:
    await store.replace_instructors(
        ctx.session, data.workshop_id, data.instructor_ids, _utc(data.created_at)
    )


@consumer.on(WorkshopUpdated)
async def workshop_updated(ctx: EventContext, data: WorkshopUpdated) -> None:
    await store.replace_instructors(
        ctx.session, data.workshop_id, data.instructor_ids, _utc(data.updated_at)
    )
