"""Tables of the workshop service."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sukverse_common.db import UtcDateTime, service_metadata
from sukverse_common.events.outbox import messaging_tables

ACTIVE = "active"
ARCHIVED = "archived"
WITHDRAWN = "withdrawn"


class Base(DeclarativeBase):
    metadata = service_metadata()


messaging = messaging_tables(Base.metadata)


class Workshop(Base):
    """A workshop; `version` grows with every change to what GET /workshops/{id} shows,
    and `step_count`/`substep_count` are kept so progress never counts the tree.

    `external_id` is a key the creating client chose, `external_owner` that client's token
    subject: one key names at most one active workshop of each client."""

    __tablename__ = "workshops"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    step_count: Mapped[int] = mapped_column(Integer)
    substep_count: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    external_id: Mapped[str | None] = mapped_column(String(320))
    external_owner: Mapped[str | None] = mapped_column(String(200))
    starts_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_workshops_newest", "created_at", "id"),
        Index("ix_workshops_external_id", "external_owner", "external_id"),
        Index(
            "uq_workshops_active_external_id",
            "external_owner",
            "external_id",
            unique=True,
            postgresql_where=text(f"status = '{ACTIVE}'"),
            sqlite_where=text(f"status = '{ACTIVE}'"),
        ),
    )


class WorkshopInstructor(Base):
    """An instructor of a workshop (an opaque user id from the auth service)."""

    __tablename__ = "workshop_instructors"

    workshop_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workshops.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


class Step(Base):
    __tablename__ = "steps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workshop_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workshops.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str | None] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(String(200))
    substep_count: Mapped[int] = mapped_column(Integer)


class Substep(Base):
    __tablename__ = "substeps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workshop_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workshops.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("steps.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str | None] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    estimated_minutes: Mapped[int | None] = mapped_column(Integer)


class Enrollment(Base):
    """A student in a workshop, kept when withdrawn; counters summarise their progress."""

    __tablename__ = "enrollments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workshop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workshops.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    enrolled_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    substeps_done: Mapped[int] = mapped_column(Integer)
    steps_done: Mapped[int] = mapped_column(Integer)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_activity_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("workshop_id", "user_id"),
        Index("ix_enrollments_page", "workshop_id", "created_at", "id"),
    )


class Progress(Base):
    """A substep one enrollment has done; `step_id` is the substep's step, copied so a
    step's progress counts from one index."""

    __tablename__ = "progress"

    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), primary_key=True
    )
    substep_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("substeps.id"), primary_key=True, index=True
    )
    step_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    completed_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_progress_step", "enrollment_id", "step_id"),)
