"""Tables of the certificate service: templates, certificates and the facts they rest on."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sukverse_common.db import UtcDateTime, service_metadata
from sukverse_common.events.outbox import messaging_tables


class Base(DeclarativeBase):
    metadata = service_metadata()


messaging = messaging_tables(Base.metadata)


EXTERNAL_KEY_INDEX = "uq_templates_external_id"


class Template(Base):
    """A workshop's certificate: its text and the criteria a student must meet (one per
    workshop). `external_id` is a key the creating client chose, `external_owner` that
    client's token subject: one key names at most one template of each client."""

    __tablename__ = "templates"
    # A unique index rather than a constraint: SQLite adds an index in place, where a
    # constraint would copy the table, which certificates refer to.
    __table_args__ = (Index(EXTERNAL_KEY_INDEX, "external_owner", "external_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    external_id: Mapped[str | None] = mapped_column(String(320))
    external_owner: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    min_completion_percent: Mapped[float] = mapped_column(Float)
    min_quiz_average: Mapped[float | None] = mapped_column(Float)
    required_quiz_ids: Mapped[list[Any]] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Certificate(Base):
    """One student's certificate for one workshop: issued at most once, maybe revoked.
    `status_index` is its bit in the revocation status lists (list `index // 131072 + 1`,
    position `index % 131072`); `identity_salt` salts the hashed email of its credential."""

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("workshop_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("templates.id"), index=True)
    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    verification_code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(500))
    revoked_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status_index: Mapped[int] = mapped_column(Integer, unique=True)
    identity_salt: Mapped[str] = mapped_column(String(32))


class Workshop(Base):
    """The replica of a workshop's title, as of its latest created or updated event."""

    __tablename__ = "workshops"

    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WorkshopInstructor(Base):
    """An instructor who teaches a workshop, and so manages its template and certificates."""

    __tablename__ = "workshop_instructors"

    workshop_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workshops.workshop_id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


class Person(Base):
    """A user's name and email as the auth service registered them: the name is printed on
    certificates, both go into credentials (the email only hashed)."""

    __tablename__ = "people"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    # Unknown for people registered before emails were kept.
    email: Mapped[str | None] = mapped_column(String(320))


class Completion(Base):
    """How far a student got in a workshop: the highest percentage seen (monotonic)."""

    __tablename__ = "completions"

    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    percent: Mapped[float] = mapped_column(Float)


class QuizGrade(Base):
    """A student's grade at a quiz of a workshop, from the latest submitted attempt."""

    __tablename__ = "quiz_grades"

    quiz_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    grade_percent: Mapped[float] = mapped_column(Float)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QuizPass(Base):
    """A quiz a student has passed (once passed, always passed)."""

    __tablename__ = "quiz_passes"

    quiz_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
