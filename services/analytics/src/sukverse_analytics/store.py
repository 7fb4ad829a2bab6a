"""Queries of the analytics service: take a session, return models."""

from __future__ import annotations

import math
import statistics
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    event,
    false,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sukverse_analytics.domain import FULL, MILLI, RiskThresholds, from_milli
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


LOCKED = "sukverse_analytics.locked_students"


async def lock_students(session: AsyncSession, keys: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """Read and lock the existing rows of these (workshop, user) pairs in one query, in key
    order; `student` then answers them without a query of its own."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    locked: dict[tuple[uuid.UUID, uuid.UUID], Student] = session.info.setdefault(LOCKED, {})
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        with session.no_autoflush:
            rows = await session.scalars(
                select(Student)
                .where(tuple_(Student.workshop_id, Student.user_id).in_(chunk))
                .order_by(Student.workshop_id, Student.user_id)
                .with_for_update()
            )
            for row in rows:
                locked[(row.workshop_id, row.user_id)] = row


async def student(session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID) -> Student:
    """A student's row in a workshop, made if missing, locked until the transaction ends."""
    locked: dict[tuple[uuid.UUID, uuid.UUID], Student] = session.info.get(LOCKED, {})
    if (workshop_id, user_id) in locked:
        return locked[(workshop_id, user_id)]
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
_STATS: Any = WorkshopStats.__table__
_COUNTERS = [column.name for column in _STATS.c if not column.primary_key]
_COUNTER_SET = frozenset(_COUNTERS)
# One statement for every delta, whichever columns it changes: a statement of only the
# changed columns has a form for each combination of them, and each form is compiled and
# cached (the cache of compiled statements churned and grew with them).
_ADD_TO_STATS = (
    update(_STATS)
    .where(_STATS.c.workshop_id == bindparam("workshop"))
    .values({name: _STATS.c[name] + bindparam(f"add_{name}") for name in _COUNTERS})
)


def add_to_stats(session: AsyncSession, workshop_id: uuid.UUID, delta: dict[str, int]) -> None:
    """Add increments to a workshop's figures when the transaction commits: a batch of
    events costs one atomic UPDATE per workshop, not one per event."""
    if not delta:
        return
    if not delta.keys() <= _COUNTER_SET:
        raise ValueError(f"not a figure of a workshop: {sorted(delta.keys() - _COUNTER_SET)}")
    pending: dict[uuid.UUID, Counter[str]] | None = session.info.get(PENDING)
    if pending is None:
        pending = session.info[PENDING] = {}
        event.listen(session.sync_session, "before_commit", _apply_pending, once=True)
    pending.setdefault(workshop_id, Counter()).update(delta)


def _apply_pending(sync_session: Session) -> None:
    pending: dict[uuid.UUID, Counter[str]] = sync_session.info.pop(PENDING, {})
    rows = [
        {"workshop": workshop_id, **{f"add_{name}": delta[name] for name in _COUNTERS}}
        for workshop_id, delta in sorted(pending.items())
        if any(delta.values())
    ]
    if rows:
        sync_session.execute(_ADD_TO_STATS, rows)


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


def _enrolled_in(workshop_id: uuid.UUID) -> ColumnElement[bool]:
    return and_(Student.workshop_id == workshop_id, Student.enrolled.is_(True))


async def middle_percents(session: AsyncSession, workshop_id: uuid.UUID) -> list[int]:
    """The one or two middle progress values (milli) of a workshop's enrolled students, in
    one statement, so that the count and the rows agree; read along an index, no sort."""
    count = select(func.count()).where(_enrolled_in(workshop_id)).scalar_subquery()
    query = (
        select(Student.percent_milli)
        .where(_enrolled_in(workshop_id))
        .order_by(Student.percent_milli)
        .offset((count - 1) // 2)
        .limit(2 - count % 2)
    )
    return list(await session.scalars(query))


async def risk_candidates(
    session: AsyncSession,
    workshop_id: uuid.UUID,
    *,
    thresholds: RiskThresholds,
    median_percent: float | None,
    now: datetime,
) -> list[StudentRow]:
    """The enrolled students who may be at risk: a superset of those the rules find (each
    bound errs by at least a thousandth on the side of including), for the rules to judge
    exactly. A cohort mostly on track costs its at-risk students, not all of them."""
    may_be: list[ColumnElement[bool]] = [
        Student.last_activity < now - timedelta(days=thresholds.inactive_days),
        Student.failed_attempts >= thresholds.max_failed_attempts,
        and_(
            Student.quiz_count > 0,
            Student.quiz_sum_milli
            < (math.ceil(thresholds.min_quiz_average * MILLI) + 1) * Student.quiz_count,
        ),
    ]
    if median_percent is not None:
        behind = math.floor((median_percent - thresholds.behind_pace_points) * MILLI) + 2
        may_be.append(Student.percent_milli < behind)
    result = await session.execute(
        select(*_STUDENT_COLUMNS)
        .where(_enrolled_in(workshop_id), Student.percent_milli < FULL, or_(false(), *may_be))
        .order_by(Student.user_id)
    )
    return [StudentRow(*row) for row in result]


def median_of(middle: Sequence[int]) -> float | None:
    """The median percentage from the middle values `middle_percents` read."""
    return float(statistics.median([from_milli(value) for value in middle])) if middle else None
