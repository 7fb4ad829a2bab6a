"""Tables of the analytics service: read models that never grow with the event history.

Percentages and grades are stored in thousandths of a percent (`*_milli`, integers), so
that the sums kept per workshop are exact and the same whatever order events add to them.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sukverse_common.db import UtcDateTime, service_metadata
from sukverse_common.events.outbox import messaging_tables

BUCKETS = 10  # completion histogram: 0-10, 10-20, ..., 90-100


class Base(DeclarativeBase):
    metadata = service_metadata()


messaging = messaging_tables(Base.metadata)


class Workshop(Base):
    """A workshop as its latest created or updated event describes it; a row exists as soon
    as any event names the workshop (`changed_at` stays None until its own event came)."""

    __tablename__ = "workshops"

    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    step_count: Mapped[int] = mapped_column(Integer, default=0)
    substep_count: Mapped[int] = mapped_column(Integer, default=0)
    instructor_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Thresholds(Base):
    """A workshop's own at-risk thresholds; None falls back to the settings' default.
    Kept apart from the read models: it is this service's own data, not rebuilt from events."""

    __tablename__ = "workshop_thresholds"

    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    inactive_days: Mapped[int | None] = mapped_column(Integer)
    behind_pace_points: Mapped[float | None] = mapped_column(Float)
    min_quiz_average: Mapped[float | None] = mapped_column(Float)
    max_failed_attempts: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Student(Base):
    """One student in one workshop: monotonic merges of every event about them."""

    __tablename__ = "students"

    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    enrolled: Mapped[bool] = mapped_column(Boolean, default=False)
    enrollment_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    substeps_done: Mapped[int] = mapped_column(Integer, default=0)
    substep_count: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
    percent_milli: Mapped[int] = mapped_column(Integer, default=0)
    last_activity: Mapped[datetime | None] = mapped_column(UtcDateTime)
    quiz_count: Mapped[int] = mapped_column(Integer, default=0)
    quiz_sum_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        # A workshop's enrolled students by progress: its median without a sort.
        Index(
            "ix_students_enrolled_percent",
            "workshop_id",
            "percent_milli",
            postgresql_where=enrolled.is_(True),
            sqlite_where=enrolled.is_(True),
        ),
    )


class QuizGrade(Base):
    """A student's grade at a quiz of a workshop, as of their latest submitted attempt."""

    __tablename__ = "quiz_grades"

    quiz_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    grade_milli: Mapped[int] = mapped_column(Integer)
    attempt_number: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Certificate(Base):
    """A certificate as its issued and revoked events describe it, whichever came first:
    it counts towards its workshop's figures once issued and as long as not revoked."""

    __tablename__ = "certificates"

    certificate_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @property
    def counted(self) -> bool:
        return self.issued_at is not None and self.revoked_at is None


class WorkshopStats(Base):
    """A workshop's figures over its enrolled students, and its certificates in force,
    kept up to date by deltas."""

    __tablename__ = "workshop_stats"

    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    percent_sum_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    grade_count: Mapped[int] = mapped_column(Integer, default=0)
    grade_sum_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    b0: Mapped[int] = mapped_column(Integer, default=0)
    b1: Mapped[int] = mapped_column(Integer, default=0)
    b2: Mapped[int] = mapped_column(Integer, default=0)
    b3: Mapped[int] = mapped_column(Integer, default=0)
    b4: Mapped[int] = mapped_column(Integer, default=0)
    b5: Mapped[int] = mapped_column(Integer, default=0)
    b6: Mapped[int] = mapped_column(Integer, default=0)
    b7: Mapped[int] = mapped_column(Integer, default=0)
    b8: Mapped[int] = mapped_column(Integer, default=0)
    b9: Mapped[int] = mapped_column(Integer, default=0)
    certificates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def histogram(self) -> list[int]:
        return [getattr(self, f"b{i}") for i in range(BUCKETS)]
