"""Request and response bodies of the analytics service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from sukverse_analytics.domain import RiskCode, RiskLevel
from sukverse_common.api import RequestSchema, Schema, WholeNumber

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class WorkshopFigures(Schema):
    """A workshop's figures over its enrolled students, and its certificates in force;
    percentages are 0-100."""

    workshop_id: uuid.UUID
    title: str
    archived: bool
    enrolled: int
    completed: int
    completion_percent: float = Field(description="mean completion over enrolled students")
    completion_histogram: list[int] = Field(
        description="enrolled students per completion band: 0-10, 10-20, ..., 90-100"
    )
    average_quiz_score: float | None = Field(
        description="mean of the enrolled students' quiz grades, each as its quiz grades"
    )
    at_risk: int
    median_percent: float | None
    certificates_issued: int = Field(description="certificates issued and not revoked")


class Reason(Schema):
    code: RiskCode
    message: str


class StudentFigures(Schema):
    user_id: uuid.UUID
    percent: float
    substeps_done: int
    substep_count: int
    completed: bool
    last_activity: datetime | None
    quiz_average: float | None
    quizzes_graded: int
    failed_attempts: int
    risk: RiskLevel
    reasons: list[Reason]


class StudentsQuery(RequestSchema):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: uuid.UUID | None = None


class AtRiskQuery(StudentsQuery):
    workshop_id: uuid.UUID


class ThresholdsIn(RequestSchema):
    """A workshop's own at-risk thresholds; null (or absent) uses the service default."""

    inactive_days: Annotated[int, Field(ge=1, le=365), WholeNumber] | None = None
    behind_pace_points: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] | None = None
    min_quiz_average: Percent | None = None
    max_failed_attempts: Annotated[int, Field(ge=1, le=1000), WholeNumber] | None = None


class ThresholdsOut(Schema):
    """The thresholds in force for a workshop, and which of them are its own."""

    workshop_id: uuid.UUID
    inactive_days: int
    behind_pace_points: float
    min_quiz_average: float
    max_failed_attempts: int
    overridden: list[str]
