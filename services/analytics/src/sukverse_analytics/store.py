"""Queries of the analytics service: take a session, return models."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sukverse_analytics.models import (
    Base,
    Certificate,
    QuizGrade,
    Student,
    Thresholds,
    Workshop,
    WorkshopStats,
)


async def _ensure(session: AsyncSession, model: type[Base], values: dict[str, Any]) -> None:
    """Insert the row unless it exists; concurrent inserts of one key both succeed."""
    table: Any = model.__table__
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(insert(table).values(**values).on_conflict_do_nothing())


async def ensure_workshop(session: AsyncSession, workshop_id: uuid.UUID) -> None:
    """Make a workshop's row and its figures (empty) unless they exist."""
    await _ensure(session, Workshop, {"workshop_id": workshop_id, "instructor_ids": []})
    await _ensure(session, WorkshopStats, {"workshop_id": workshop_id})


async def workshop(
    session: AsyncSession, workshop_id: uuid.UUID, *, lock: bool = False
) -> Workshop | None:
    query = select(Workshop).where(Workshop.workshop_id == workshop_id)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def student(session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID) -> Student:
    """A student's row in a workshop, made if missing, locked until the transaction ends."""
    query = (
        select(Student)
        .where(Student.workshop_id == workshop_id, Student.user_id == user_id)
        .with_for_update()
    )
    with session.no_autoflush:
        found = await session.scalar(query)
        if found is None:
            await ensure_workshop(session, workshop_id)
            await _ensure(session, Student, {"workshop_id": workshop_id, "user_id": user_id})
            found = await session.scalar(query)
    assert found is not None
    return found


async def certificate(
    session: AsyncSession, certificate_id: uuid.UUID, workshop_id: uuid.UUID, user_id: uuid.UUID
) -> Certificate:
    """A certificate's row, made if missing, locked until the transaction ends."""
    query = (
        select(Certificate).where(Certificate.certificate_id == certificate_id).with_for_update()
    )
    found = await session.scalar(query)
    if found is None:
        await ensure_workshop(session, workshop_id)
        values = {"certificate_id": certificate_id, "workshop_id": workshop_id, "user_id": user_id}
        await _ensure(session, Certificate, values)
        found = await session.scalar(query)
    assert found is not None
    return found


async def quiz_grade(
    session: AsyncSession, quiz_id: uuid.UUID, user_id: uuid.UUID
) -> QuizGrade | None:
    return await session.scalar(
        select(QuizGrade)
        .where(QuizGrade.quiz_id == quiz_id, QuizGrade.user_id == user_id)
        .with_for_update()
    )


PENDING = "sukverse_analytics.pending_stats"


def add_to_stats(session: AsyncSession, workshop_id: uuid.UUID, delta: dict[str, int]) -> None:
    """Add increments to a workshop's figures when the transaction commits: a batch of
    events costs one atomic UPDATE per workshop, not one per event."""
    if not delta:
        return
    pending: dict[uuid.UUID, Counter[str]] | None = session.info.get(PENDING)
    if pending is None:
        pending = session.info[PENDING] = {}
        event.listen(session.sync_session, "before_commit", _apply_pending, once=True)
    pending.setdefault(workshop_id, Counter()).update(delta)


def _apply_pending(sync_session: Session) -> None:
    pending: dict[uuid.UUID, Counter[str]] = sync_session.info.pop(PENDING, {})
    table: Any = WorkshopStats.__table__
    for workshop_id, delta in sorted(pending.items()):
        changes = {name: value for name, value in delta.items() if value}
        if changes:
            sync_session.execute(
                update(table)
                .where(table.c.workshop_id == workshop_id)
                .values({name: table.c[name] + value for name, value in changes.items()})
            )


async def stats(session: AsyncSession, workshop_id: uuid.UUID) -> WorkshopStats | None:
    return await session.get(WorkshopStats, workshop_id)


async def all_stats(session: AsyncSession) -> Sequence[WorkshopStats]:
    return (await session.scalars(select(WorkshopStats))).all()


async def thresholds(session: AsyncSession, workshop_id: uuid.UUID) -> Thresholds | None:
    return await session.get(Thresholds, workshop_id)


async def all_thresholds(session: AsyncSession) -> Sequence[Thresholds]:
    return (await session.scalars(select(Thresholds))).all()


@dataclass(frozen=True)
class StudentRow:
    """What the figures need of one enrolled student, read without the ORM's overhead."""

    workshop_id: uuid.UUID
    user_id: uuid.UUID
    substeps_done: int
    substep_count: int
    completed: bool
    percent_milli: int
    last_activity: datetime | None
    quiz_count: int
    quiz_sum_milli: int
    failed_attempts: int


_STUDENT_COLUMNS = [Student.__table__.c[field.name] for field in fields(StudentRow)]


async def enrolled_students(session: AsyncSession, workshop_id: uuid.UUID) -> list[StudentRow]:
    """The enrolled students of one workshop, by user id: bounded by the cohort, not by
    the number of events."""
    result = await session.execute(
        select(*_STUDENT_COLUMNS)
        .where(Student.workshop_id == workshop_id, Student.enrolled.is_(True))
        .order_by(Student.user_id)
    )
    return [StudentRow(*row) for row in result]


async def all_enrolled_students(session: AsyncSession) -> list[StudentRow]:
    result = await session.execute(select(*_STUDENT_COLUMNS).where(Student.enrolled.is_(True)))
    return [StudentRow(*row) for row in result]
