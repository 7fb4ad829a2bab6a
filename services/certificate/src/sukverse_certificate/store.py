"""Queries of the certificate service: take a session, return models."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, false, func, insert, or_, select, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_certificate.badges import STATUS_LIST_FILL, STATUS_LIST_SIZE
from sukverse_certificate.domain import Facts
from sukverse_certificate.models import (
    Certificate,
    Completion,
    Person,
    QuizGrade,
    QuizPass,
    Template,
    Workshop,
    WorkshopInstructor,
)


async def lock_workshop(session: AsyncSession, workshop_id: uuid.UUID) -> None:
    """Serialise issuing for one workshop until the transaction ends (PostgreSQL): a
    template being written and a fact being handled at once would otherwise each miss the
    other's uncommitted row, and a student who meets the criteria would get nothing. SQLite
    serialises every write already."""
    if session.get_bind().dialect.name == "postgresql":
        key = (workshop_id.int >> 64) - (1 << 63)  # a signed 64-bit lock key
        await session.execute(select(func.pg_advisory_xact_lock(key)))


async def template_of_workshop(session: AsyncSession, workshop_id: uuid.UUID) -> Template | None:
    return await session.scalar(select(Template).where(Template.workshop_id == workshop_id))


async def teaches(session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(WorkshopInstructor.user_id).where(
            WorkshopInstructor.workshop_id == workshop_id, WorkshopInstructor.user_id == user_id
        )
    )
    return found is not None


def _taught_by(user_id: uuid.UUID) -> Any:
    return select(WorkshopInstructor.workshop_id).where(WorkshopInstructor.user_id == user_id)


async def list_templates(
    session: AsyncSession,
    *,
    everything: bool,
    instructor_id: uuid.UUID | None,
    workshop_id: uuid.UUID | None,
    external_key: tuple[str, str] | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Template]:
    """Templates a caller may see: all, or those of the workshops it teaches; with an
    `external_key` (owner, external id), only the one that client created with that key."""
    query = select(Template).order_by(Template.id).limit(limit)
    if external_key is not None:
        owner, external_id = external_key
        query = query.where(Template.external_owner == owner, Template.external_id == external_id)
    if not everything:
        if instructor_id is None:
            return []
        query = query.where(Template.workshop_id.in_(_taught_by(instructor_id)))
    if workshop_id is not None:
        query = query.where(Template.workshop_id == workshop_id)
    if after is not None:
        query = query.where(Template.id > after)
    return (await session.scalars(query)).all()


async def list_certificates(
    session: AsyncSession,
    *,
    everything: bool,
    viewer_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    workshop_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Certificate]:
    """Certificates the viewer may see: all (staff), else their own and those of the
    workshops they teach; narrowed by the filters."""
    query = select(Certificate).order_by(Certificate.id).limit(limit)
    if not everything:
        if viewer_id is None:
            return []
        visible: list[ColumnElement[bool]] = [
            Certificate.user_id == viewer_id,
            Certificate.workshop_id.in_(_taught_by(viewer_id)),
        ]
        query = query.where(or_(false(), *visible))
    if user_id is not None:
        query = query.where(Certificate.user_id == user_id)
    if workshop_id is not None:
        query = query.where(Certificate.workshop_id == workshop_id)
    if after is not None:
        query = query.where(Certificate.id > after)
    return (await session.scalars(query)).all()


async def certificate_by_code(session: AsyncSession, code: str) -> Certificate | None:
    return await session.scalar(select(Certificate).where(Certificate.verification_code == code))


async def has_certificate(
    session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    found = await session.scalar(
        select(Certificate.id).where(
            Certificate.workshop_id == workshop_id, Certificate.user_id == user_id
        )
    )
    return found is not None


async def insert_certificate(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a certificate unless one of its unique keys is taken; whether it was
    inserted. The constraints decide, so concurrent issuers cannot both win: the student's
    one certificate for the workshop, or a status index both drew."""
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await session.execute(upsert(Certificate).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


_FILLING = "sukverse.status_list_filling"


async def free_status_index(session: AsyncSession) -> int:
    """A random unused status index in the list now filling. A list takes new certificates
    until STATUS_LIST_FILL of its positions are used, so no list is much more than half
    used: which list, and how full, is read once per transaction (the highest index, then a
    count within its list) and kept up to date as this transaction draws, so that issuing
    to a whole workshop does not count the table again for each certificate."""
    filling: list[int] | None = session.info.get(_FILLING)
    if filling is None:
        highest = await session.scalar(select(func.max(Certificate.status_index)))
        number = 0 if highest is None else highest // STATUS_LIST_SIZE
        first = number * STATUS_LIST_SIZE
        used = await session.scalar(
            select(func.count()).where(
                Certificate.status_index >= first,
                Certificate.status_index < first + STATUS_LIST_SIZE,
            )
        )
        filling = session.info[_FILLING] = [number, used or 0]
    if filling[1] >= STATUS_LIST_FILL:
        filling[:] = [filling[0] + 1, 0]
    first = filling[0] * STATUS_LIST_SIZE
    while True:
        candidate = first + secrets.randbelow(STATUS_LIST_SIZE)
        taken = await session.scalar(
            select(Certificate.id).where(Certificate.status_index == candidate)
        )
        if taken is None:
            filling[1] += 1
            return candidate


async def status_lists(session: AsyncSession) -> int:
    """How many status lists there are: at least one, and one more for every
    STATUS_LIST_SIZE indexes."""
    highest = await session.scalar(select(func.max(Certificate.status_index)))
    return 1 if highest is None else highest // STATUS_LIST_SIZE + 1


async def revoked_positions(session: AsyncSession, number: int) -> list[int]:
    """The positions of the revoked certificates in status list `number` (from 1)."""
    first = (number - 1) * STATUS_LIST_SIZE
    indexes = await session.scalars(
        select(Certificate.status_index).where(
            Certificate.revoked_at.is_not(None),
            Certificate.status_index >= first,
            Certificate.status_index < first + STATUS_LIST_SIZE,
        )
    )
    return [index - first for index in indexes]


async def facts(session: AsyncSession, workshop_id: uuid.UUID, user_id: uuid.UUID) -> Facts:
    completion = await session.get(Completion, (workshop_id, user_id))
    grades = await session.execute(
        select(QuizGrade.quiz_id, QuizGrade.grade_percent).where(
            QuizGrade.workshop_id == workshop_id, QuizGrade.user_id == user_id
        )
    )
    passed = await session.scalars(
        select(QuizPass.quiz_id).where(
            QuizPass.workshop_id == workshop_id, QuizPass.user_id == user_id
        )
    )
    return Facts(
        completion_percent=completion.percent if completion else 0.0,
        quiz_grades={row.quiz_id: row.grade_percent for row in grades},
        passed_quiz_ids=frozenset(passed.all()),
    )


async def students_with_facts(session: AsyncSession, workshop_id: uuid.UUID) -> list[uuid.UUID]:
    """Everyone the events told anything about in a workshop."""
    query = union(
        select(Completion.user_id).where(Completion.workshop_id == workshop_id),
        select(QuizGrade.user_id).where(QuizGrade.workshop_id == workshop_id),
        select(QuizPass.user_id).where(QuizPass.workshop_id == workshop_id),
    )
    return sorted((await session.scalars(query)).all())


async def name_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    person = await session.get(Person, user_id)
    return person.full_name if person else None


async def person_of(session: AsyncSession, user_id: uuid.UUID) -> Person | None:
    return await session.get(Person, user_id)


async def workshop_title(session: AsyncSession, workshop_id: uuid.UUID) -> str | None:
    workshop = await session.get(Workshop, workshop_id)
    return workshop.title if workshop else None


async def replace_workshop(
    session: AsyncSession,
    *,
    workshop_id: uuid.UUID,
    title: str,
    instructor_ids: Sequence[uuid.UUID],
    at: datetime,
) -> None:
    """Set a workshop's title and instructors unless a later change is already recorded."""
    workshop = await session.get(Workshop, workshop_id)
    if workshop is None:
        session.add(Workshop(workshop_id=workshop_id, title=title[:200], changed_at=at))
        await session.flush()
    elif workshop.changed_at > at:
        return
    else:
        workshop.title, workshop.changed_at = title[:200], at
    await session.execute(
        delete(WorkshopInstructor).where(WorkshopInstructor.workshop_id == workshop_id)
    )
    if instructor_ids:
        await session.execute(
            insert(WorkshopInstructor),
            [{"workshop_id": workshop_id, "user_id": user_id} for user_id in set(instructor_ids)],
        )
