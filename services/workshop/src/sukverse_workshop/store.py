"""Queries of the workshop service: each takes a session and returns rows or models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_workshop.models import (
    ACTIVE,
    Enrollment,
    Progress,
    Step,
    Substep,
    Workshop,
    WorkshopInstructor,
)


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# -- workshops -----------------------------------------------------------------------------


async def workshop(session: AsyncSession, workshop_id: uuid.UUID) -> Workshop | None:
    return await session.get(Workshop, workshop_id)


async def lock_workshop(session: AsyncSession, workshop_id: uuid.UUID) -> Workshop | None:
    """The workshop, locked until the transaction ends: `FOR UPDATE` on PostgreSQL; on
    SQLite a first write, which takes the database's one write lock for the transaction."""
    if not _is_postgres(session):
        await session.execute(
            update(Workshop)
            .where(Workshop.id == workshop_id)
            .values(version=Workshop.version)
            .execution_options(synchronize_session=False)
        )
    return await session.scalar(
        select(Workshop).where(Workshop.id == workshop_id).with_for_update()
    )


async def instructor_ids(session: AsyncSession, workshop_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(WorkshopInstructor.user_id)
        .where(WorkshopInstructor.workshop_id == workshop_id)
        .order_by(WorkshopInstructor.user_id)
    )
    return list(rows)


async def instructors_of(
    session: AsyncSession, workshop_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    found: dict[uuid.UUID, list[uuid.UUID]] = {wid: [] for wid in workshop_ids}
    if not workshop_ids:
        return found
    rows = await session.execute(
        select(WorkshopInstructor.workshop_id, WorkshopInstructor.user_id)
        .where(WorkshopInstructor.workshop_id.in_(workshop_ids))
        .order_by(WorkshopInstructor.user_id)
    )
    for workshop_id, user_id in rows:
        found[workshop_id].append(user_id)
    return found


async def is_enrolled(session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Enrollment.id).where(
            Enrollment.workshop_id == workshop_id,
            Enrollment.user_id == user_id,
            Enrollment.status == ACTIVE,
        )
    )
    return found is not None


async def any_enrollment(session: AsyncSession, workshop_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Enrollment.workshop_id == workshop_id))))


async def set_instructors(
    session: AsyncSession, workshop_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> None:
    await session.execute(
        delete(WorkshopInstructor).where(WorkshopInstructor.workshop_id == workshop_id)
    )
    if user_ids:
        await session.execute(
            insert(WorkshopInstructor),
            [{"workshop_id": workshop_id, "user_id": user_id} for user_id in user_ids],
        )


async def visible_workshops(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None,
    everything: bool,
    status: str | None,
    external_key: tuple[str, str] | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Workshop]:
    """Newest first: every workshop, or those the user teaches or is enrolled in; with an
    `external_key` (owner, external id), only those that client created with that key."""
    query = select(Workshop).order_by(Workshop.created_at.desc(), Workshop.id.desc()).limit(limit)
    if external_key is not None:
        owner, external_id = external_key
        query = query.where(Workshop.external_owner == owner, Workshop.external_id == external_id)
    if not everything:
        teaches = select(WorkshopInstructor.workshop_id).where(
            WorkshopInstructor.user_id == user_id
        )
        enrolled = select(Enrollment.workshop_id).where(
            Enrollment.user_id == user_id, Enrollment.status == ACTIVE
        )
        query = query.where(or_(Workshop.id.in_(teaches), Workshop.id.in_(enrolled)))
    if status is not None:
        query = query.where(Workshop.status == status)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(Workshop.created_at < at, and_(Workshop.created_at == at, Workshop.id < last_id))
        )
    return (await session.scalars(query)).all()


async def steps(session: AsyncSession, workshop_id: uuid.UUID) -> Sequence[Any]:
    query = (
        select(Step.id, Step.key, Step.title, Step.substep_count)
        .where(Step.workshop_id == workshop_id)
        .order_by(Step.position)
    )
    return (await session.execute(query)).all()


async def substeps(session: AsyncSession, workshop_id: uuid.UUID) -> Sequence[Any]:
    query = (
        select(
            Substep.id,
            Substep.step_id,
            Substep.key,
            Substep.title,
            Substep.body,
            Substep.estimated_minutes,
        )
        .where(Substep.workshop_id == workshop_id)
        .order_by(Substep.position)
    )
    return (await session.execute(query)).all()


async def step_models(session: AsyncSession, workshop_id: uuid.UUID) -> Sequence[Step]:
    return (await session.scalars(select(Step).where(Step.workshop_id == workshop_id))).all()


async def substep_models(session: AsyncSession, workshop_id: uuid.UUID) -> Sequence[Substep]:
    query = select(Substep).where(Substep.workshop_id == workshop_id)
    return (await session.scalars(query)).all()


async def substeps_with_progress(
    session: AsyncSession, substep_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    if not substep_ids:
        return []
    query = select(Progress.substep_id).where(Progress.substep_id.in_(substep_ids)).distinct()
    return list(await session.scalars(query))


# -- enrollments ---------------------------------------------------------------------------


def _insert_ignoring_duplicates(session: AsyncSession, model: type[Any]) -> Any:
    dialect = postgresql if _is_postgres(session) else sqlite
    return dialect.insert(model.__table__).on_conflict_do_nothing()


async def add_enrollments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert the enrollments that do not exist yet; the user ids of those inserted."""
    inserted: set[uuid.UUID] = set()
    for start in range(0, len(rows), 500):
        query = (
            _insert_ignoring_duplicates(session, Enrollment)
            .values(rows[start : start + 500])
            .returning(Enrollment.user_id)
        )
        inserted.update((await session.scalars(query)).all())
    return inserted


async def reactivate(
    session: AsyncSession,
    *,
    workshop_id: uuid.UUID,
    user_ids: Sequence[uuid.UUID],
    by: uuid.UUID | None,
    at: datetime,
) -> set[uuid.UUID]:
    """Withdrawn enrollments of these users made active again; their user ids."""
    query = (
        update(Enrollment)
        .where(
            Enrollment.workshop_id == workshop_id,
            Enrollment.user_id.in_(user_ids),
            Enrollment.status != ACTIVE,
        )
        .values(status=ACTIVE, enrolled_at=at, enrolled_by=by, withdrawn_at=None)
        .returning(Enrollment.user_id)
        .execution_options(synchronize_session=False)
    )
    return set((await session.scalars(query)).all())


async def enrollments_of(
    session: AsyncSession, workshop_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> Sequence[Enrollment]:
    query = select(Enrollment).where(
        Enrollment.workshop_id == workshop_id, Enrollment.user_id.in_(user_ids)
    )
    return (await session.scalars(query)).all()


async def enrollment(
    session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID
) -> Enrollment | None:
    return await session.scalar(
        select(Enrollment).where(
            Enrollment.workshop_id == workshop_id, Enrollment.user_id == user_id
        )
    )


async def enrollment_page(
    session: AsyncSession,
    workshop_id: uuid.UUID,
    *,
    status: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Enrollment]:
    query = (
        select(Enrollment)
        .where(Enrollment.workshop_id == workshop_id)
        .order_by(Enrollment.created_at, Enrollment.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(Enrollment.status == status)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                Enrollment.created_at > at,
                and_(Enrollment.created_at == at, Enrollment.id > last_id),
            )
        )
    return (await session.scalars(query)).all()


async def withdraw(
    session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID, *, at: datetime
) -> uuid.UUID | None:
    """Withdraw an active enrollment; its id, or None when there was none to withdraw."""
    query = (
        update(Enrollment)
        .where(
            Enrollment.workshop_id == workshop_id,
            Enrollment.user_id == user_id,
            Enrollment.status == ACTIVE,
        )
        .values(status="withdrawn", withdrawn_at=at)
        .returning(Enrollment.id)
        .execution_options(synchronize_session=False)
    )
    found: uuid.UUID | None = await session.scalar(query)
    return found


async def lock_workshop_enrollments(
    session: AsyncSession, workshop_id: uuid.UUID
) -> Sequence[Enrollment]:
    query = select(Enrollment).where(Enrollment.workshop_id == workshop_id).with_for_update()
    return (await session.scalars(query)).all()


# -- progress ------------------------------------------------------------------------------

# Statements of recording progress, built once: Core on the tables, parameters bound at
# execution, so a write spends no time building, keying or ORM-wrapping its statements.
_ENROLLMENTS = cast(Table, Enrollment.__table__)
_PROGRESS = cast(Table, Progress.__table__)
_E, _P = _ENROLLMENTS.c, _PROGRESS.c
_W, _S, _ST = Workshop.__table__.c, Substep.__table__.c, Step.__table__.c
_ENROLLMENT_STATE = (_E.id, _E.status, _E.substeps_done, _E.steps_done, _E.completed_at)
_THE_ENROLLMENT = (_E.workshop_id == bindparam("of_workshop"), _E.user_id == bindparam("of_user"))
_LOCK_POSTGRES = select(*_ENROLLMENT_STATE).where(*_THE_ENROLLMENT).with_for_update()
_LOCK_SQLITE = (
    update(_ENROLLMENTS)
    .where(*_THE_ENROLLMENT)
    .values(last_activity_at=_E.last_activity_at)
    .returning(*_ENROLLMENT_STATE)
)
_TARGET = (
    select(
        _W.status,
        _W.step_count,
        _W.substep_count,
        _S.workshop_id.label("substep_workshop_id"),
        _S.step_id,
        _ST.substep_count.label("step_size"),
    )
    .select_from(Workshop.__table__)
    .outerjoin(Substep.__table__, _S.id == bindparam("substep_id"))
    .outerjoin(Step.__table__, _ST.id == _S.step_id)
    .where(_W.id == bindparam("workshop_id"))
)
_NEW_PROGRESS: dict[str, Any] = {
    "enrollment_id": bindparam("of_enrollment"),
    "substep_id": bindparam("of_substep"),
    "step_id": bindparam("of_step"),
    "completed_at": bindparam("at"),
}
_ADD_SQLITE = (
    sqlite.insert(_PROGRESS).values(_NEW_PROGRESS).on_conflict_do_nothing().returning(_P.substep_id)
)
_STEP_PROGRESS = (
    select(func.count())
    .select_from(_PROGRESS)
    .where(_P.enrollment_id == bindparam("of_enrollment"), _P.step_id == bindparam("of_step"))
)
# PostgreSQL inserts and counts in one statement: the count sees the statement's snapshot,
# taken before the insert, and the enrollment's lock keeps out any other writer of its rows.
_ADDED = (
    postgresql.insert(_PROGRESS)
    .values(_NEW_PROGRESS)
    .on_conflict_do_nothing()
    .returning(_P.substep_id)
    .cte("added")
)
_ADD_AND_COUNT_POSTGRES = select(
    select(func.count()).select_from(_ADDED).scalar_subquery().label("added"),
    _STEP_PROGRESS.scalar_subquery().label("before"),
)
_COUNTERS = (
    update(_ENROLLMENTS)
    .where(_E.id == bindparam("enrollment_id"))
    .values(
        substeps_done=bindparam("new_substeps_done"),
        steps_done=bindparam("new_steps_done"),
        completed_at=bindparam("new_completed_at"),
        last_activity_at=bindparam("at"),
    )
)


async def lock_enrollment(session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID) -> Any:
    """One enrollment's state, locked until the transaction ends (see `lock_workshop`)."""
    query = _LOCK_POSTGRES if _is_postgres(session) else _LOCK_SQLITE
    params = {"of_workshop": workshop_id, "of_user": user_id}
    row: Any = (await session.execute(query, params)).first()
    return row


async def progress_target(
    session: AsyncSession, workshop_id: uuid.UUID, substep_id: uuid.UUID
) -> Any:
    """In one query: the workshop's status and sizes, and the substep's workshop, step
    and that step's size (None when there is no such substep)."""
    params = {"workshop_id": workshop_id, "substep_id": substep_id}
    return (await session.execute(_TARGET, params)).first()


async def add_progress(
    session: AsyncSession,
    *,
    enrollment_id: uuid.UUID,
    substep_id: uuid.UUID,
    step_id: uuid.UUID,
    at: datetime,
) -> int | None:
    """Record a substep as done: how many substeps of its step are now done, or None when
    it already was."""
    params = {
        "of_enrollment": enrollment_id,
        "of_substep": substep_id,
        "of_step": step_id,
        "at": at,
    }
    if _is_postgres(session):
        added, before = (await session.execute(_ADD_AND_COUNT_POSTGRES, params)).one()
        return int(before) + 1 if added else None
    if (await session.execute(_ADD_SQLITE, params)).first() is None:
        return None
    return int(await session.scalar(_STEP_PROGRESS, params) or 0)


async def set_counters(
    session: AsyncSession,
    enrollment_id: uuid.UUID,
    *,
    substeps_done: int,
    steps_done: int,
    completed_at: datetime | None,
    at: datetime,
) -> None:
    params = {
        "enrollment_id": enrollment_id,
        "new_substeps_done": substeps_done,
        "new_steps_done": steps_done,
        "new_completed_at": completed_at,
        "at": at,
    }
    await session.execute(_COUNTERS, params)


async def progress_of(session: AsyncSession, enrollment_id: uuid.UUID) -> dict[uuid.UUID, datetime]:
    rows = await session.execute(
        select(Progress.substep_id, Progress.completed_at).where(
            Progress.enrollment_id == enrollment_id
        )
    )
    return {row.substep_id: row.completed_at for row in rows}


async def step_progress_counts(
    session: AsyncSession, workshop_id: uuid.UUID
) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
    """For each enrollment of a workshop, how many substeps of each step it has done."""
    rows = await session.execute(
        select(Progress.enrollment_id, Progress.step_id, func.count())
        .join(Enrollment, Enrollment.id == Progress.enrollment_id)
        .where(Enrollment.workshop_id == workshop_id)
        .group_by(Progress.enrollment_id, Progress.step_id)
    )
    counts: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
    for enrollment_id, step_id, count in rows:
        counts.setdefault(enrollment_id, {})[step_id] = int(count)
    return counts


async def move_progress(session: AsyncSession, moves: dict[uuid.UUID, uuid.UUID]) -> None:
    """Follow substeps that moved to another step."""
    for substep_id, step_id in moves.items():
        await session.execute(
            update(Progress)
            .where(Progress.substep_id == substep_id)
            .values(step_id=step_id)
            .execution_options(synchronize_session=False)
        )
