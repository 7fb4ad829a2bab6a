"""Queries of the quiz service: take a session, return models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, false, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_quiz.models import (
    Answer,
    Attempt,
    Enrollment,
    Quiz,
    QuizPass,
    Workshop,
    WorkshopInstructor,
)


async def quiz(
    session: AsyncSession, quiz_id: uuid.UUID, *, lock: str | None = None
) -> Quiz | None:
    """A quiz; `lock` "share" keeps its questions from changing until the transaction
    ends, "update" also waits for the attempts being started (PostgreSQL)."""
    query = select(Quiz).where(Quiz.id == quiz_id)
    if lock is not None:
        query = query.with_for_update(read=lock == "share")
    return await session.scalar(query)


async def is_enrolled(session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    active = await session.scalar(
        select(Enrollment.active).where(
            Enrollment.workshop_id == workshop_id, Enrollment.user_id == user_id
        )
    )
    return bool(active)


async def teaches(session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(WorkshopInstructor.user_id).where(
            WorkshopInstructor.workshop_id == workshop_id, WorkshopInstructor.user_id == user_id
        )
    )
    return found is not None


async def replace_instructors(
    session: AsyncSession, workshop_id: uuid.UUID, instructor_ids: Sequence[uuid.UUID], at: datetime
) -> None:
    """Set a workshop's instructors unless a later change is already recorded."""
    workshop = await session.get(Workshop, workshop_id)
    if workshop is None:
        session.add(Workshop(workshop_id=workshop_id, changed_at=at))
        await session.flush()
    elif workshop.changed_at > at:
        return
    else:
        workshop.changed_at = at
    await session.execute(
        delete(WorkshopInstructor).where(WorkshopInstructor.workshop_id == workshop_id)
    )
    if instructor_ids:
        await session.execute(
            insert(WorkshopInstructor),
            [{"workshop_id": workshop_id, "user_id": user_id} for user_id in set(instructor_ids)],
        )


async def list_quizzes(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID | None,
    student_id: uuid.UUID | None,
    everything: bool,
    workshop_id: uuid.UUID | None,
    external_key: tuple[str, str] | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Quiz]:
    """Quizzes a caller may see: all; those it owns or whose workshop it teaches; those a
    student may attempt. With an `external_key` (owner, external id), only the one that
    client created with that key."""
    query = select(Quiz).order_by(Quiz.id).limit(limit)
    if external_key is not None:
        owner, external_id = external_key
        query = query.where(Quiz.external_owner == owner, Quiz.external_id == external_id)
    if not everything:
        visible: list[ColumnElement[bool]] = []
        if owner_id is not None:
            taught = select(WorkshopInstructor.workshop_id).where(
                WorkshopInstructor.user_id == owner_id
            )
            visible += [Quiz.owner_id == owner_id, Quiz.workshop_id.in_(taught)]
        if student_id is not None:
            enrolled = select(Enrollment.workshop_id).where(
                Enrollment.user_id == student_id, Enrollment.active.is_(True)
            )
            visible += [Quiz.workshop_id.is_(None), Quiz.workshop_id.in_(enrolled)]
        query = query.where(or_(*visible) if visible else false())
    if workshop_id is not None:
        query = query.where(Quiz.workshop_id == workshop_id)
    if after is not None:
        query = query.where(Quiz.id > after)
    return (await session.scalars(query)).all()


async def count_attempts(session: AsyncSession, quiz_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Attempt).where(Attempt.quiz_id == quiz_id)
    )
    return count or 0


async def attempts_of(
    session: AsyncSession, quiz_id: uuid.UUID, user_id: uuid.UUID
) -> Sequence[Attempt]:
    query = (
        select(Attempt)
        .where(Attempt.quiz_id == quiz_id, Attempt.user_id == user_id)
        .order_by(Attempt.number)
    )
    return (await session.scalars(query)).all()


async def list_attempts(
    session: AsyncSession,
    quiz_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Attempt]:
    query = (
        select(Attempt)
        .where(Attempt.quiz_id == quiz_id)
        .order_by(Attempt.started_at, Attempt.id)
        .limit(limit)
    )
    if user_id is not None:
        query = query.where(Attempt.user_id == user_id)
    if after is not None:
        started, attempt_id = after
        query = query.where(
            or_(
                Attempt.started_at > started,
                (Attempt.started_at == started) & (Attempt.id > attempt_id),
            )
        )
    return (await session.scalars(query)).all()


async def attempt(session: AsyncSession, attempt_id: uuid.UUID) -> Attempt | None:
    return await session.get(Attempt, attempt_id)


async def lock_attempt(
    session: AsyncSession, attempt_id: uuid.UUID, at: datetime
) -> Attempt | None:
    """The attempt, held until the transaction ends: a write takes PostgreSQL's row lock
    and SQLite's database lock, so saves and submits of one attempt run one at a time."""
    touched = await session.execute(
        update(Attempt).where(Attempt.id == attempt_id).values(updated_at=at)
    )
    if not touched.rowcount:  # type: ignore[attr-defined]
        return None
    return await session.scalar(
        select(Attempt).where(Attempt.id == attempt_id).execution_options(populate_existing=True)
    )


async def answers(session: AsyncSession, attempt_id: uuid.UUID) -> Sequence[Answer]:
    query = (
        select(Answer)
        .where(Answer.attempt_id == attempt_id)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(query)).all()


async def record_pass(
    session: AsyncSession,
    *,
    quiz_id: uuid.UUID,
    user_id: uuid.UUID,
    attempt_id: uuid.UUID,
    at: datetime,
) -> bool:
    """Record a student's first pass of a quiz; False when they had passed it before."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    result = await session.execute(
        dialect.insert(QuizPass)
        .values(quiz_id=quiz_id, user_id=user_id, attempt_id=attempt_id, passed_at=at)
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def enrollment(
    session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID
) -> Enrollment | None:
    return await session.get(Enrollment, (workshop_id, user_id))
