"""Tables of the quiz service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from sukverse_common.db import UtcDateTime, service_metadata
from sukverse_common.events.outbox import messaging_tables


class Base(DeclarativeBase):
    metadata = service_metadata()


messaging = messaging_tables(Base.metadata)


class Quiz(Base):
    """A quiz and its rules; `owner_id` is None when a machine client created it.
    `external_id` is a key the creating client chose, `external_owner` that client's token
    subject: one key names at most one quiz of each client."""

    __tablename__ = "quizzes"
    # A unique index rather than a constraint: SQLite adds an index in place, where a
    # constraint would copy the table and, with foreign keys on, cascade to its questions.
    __table_args__ = (
        Index("uq_quizzes_external_id", "external_owner", "external_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    workshop_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    external_id: Mapped[str | None] = mapped_column(String(320))
    external_owner: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    pass_mark: Mapped[float] = mapped_column(Float)
    max_attempts: Mapped[int] = mapped_column(Integer)
    time_limit_seconds: Mapped[int | None] = mapped_column(Integer)
    grading: Mapped[str] = mapped_column(String(20))
    shuffle_questions: Mapped[bool] = mapped_column(Boolean)
    shuffle_options: Mapped[bool] = mapped_column(Boolean)
    review: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    questions: Mapped[list[Question]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="Question.position"
    )

    @property
    def max_score(self) -> float:
        return sum(question.points for question in self.questions)


class Question(Base):
    """One question; the columns after `points` hold its key, by kind."""

    __tablename__ = "questions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    quiz_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("quizzes.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    prompt: Mapped[str] = mapped_column(Text)
    points: Mapped[float] = mapped_column(Float)
    partial_credit: Mapped[str | None] = mapped_column(String(20))
    answer: Mapped[bool | None] = mapped_column(Boolean)
    accepted: Mapped[list[str] | None] = mapped_column(JSON)
    value: Mapped[float | None] = mapped_column(Float)
    tolerance: Mapped[float | None] = mapped_column(Float)

    options: Mapped[list[Option]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="Option.position"
    )


class Option(Base):
    __tablename__ = "options"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    question_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("questions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    correct: Mapped[bool] = mapped_column(Boolean)


class Attempt(Base):
    """One student's attempt; `layout` is the order it shows questions and options in,
    `earned` the points per question once submitted."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("quiz_id", "user_id", "number"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    quiz_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("quizzes.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    number: Mapped[int] = mapped_column(Integer)
    layout: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    percent: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    grade_percent: Mapped[float | None] = mapped_column(Float)
    earned: Mapped[dict[str, float] | None] = mapped_column(JSON)


class Answer(Base):
    """The saved answer of one question in one attempt: `{option_ids | value | text}`."""

    __tablename__ = "answers"

    attempt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True
    )
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    saved_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Enrollment(Base):
    """The replica of the workshop service's enrollments: the latest change per student
    and workshop wins, and a withdrawal is kept as an inactive row."""

    __tablename__ = "enrollments"

    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)
    enrollment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    active: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Workshop(Base):
    """The replica of a workshop's instructors, as of its latest created or updated event."""

    __tablename__ = "workshops"

    workshop_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WorkshopInstructor(Base):
    """An instructor who teaches a workshop, and so manages the workshop's quizzes."""

    __tablename__ = "workshop_instructors"

    workshop_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workshops.workshop_id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


class QuizPass(Base):
    """The first passing attempt of a student at a quiz."""

    __tablename__ = "quiz_passes"

    quiz_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("quizzes.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    attempt_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    passed_at: Mapped[datetime] = mapped_column(UtcDateTime)
