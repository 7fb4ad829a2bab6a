"""Request and response bodies of the workshop service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, ValidationInfo, field_validator

from sukverse_common.api import ExternalId, NotBlank, RequestSchema, Schema, WholeNumber

MAX_STEPS = 500
MAX_SUBSTEPS_PER_STEP = 50
MAX_SUBSTEPS = 5_000
MAX_INSTRUCTORS = 50
MAX_ENROLL_BATCH = 1_000

Title = Annotated[str, StringConstraints(max_length=200), NotBlank]
Description = Annotated[str, StringConstraints(max_length=10_000)]
Markdown = Annotated[str, StringConstraints(max_length=20_000)]
Minutes = Annotated[int, Field(ge=0, le=10_000), WholeNumber]
InstructorIds = Annotated[list[uuid.UUID], Field(max_length=MAX_INSTRUCTORS)]
Key = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"),
    Field(description="The client's name for the item, unique among its siblings"),
]


def _check_total(steps: list[StepIn] | list[StepPatch] | None) -> None:
    if steps is not None and sum(len(step.substeps) for step in steps) > MAX_SUBSTEPS:
        raise ValueError(f"a workshop has at most {MAX_SUBSTEPS} substeps in all")


def ends_after_start(ends_at: datetime | None, starts_at: datetime | None) -> str | None:
    """Why a schedule is wrong, or None when it is not."""
    if ends_at is not None and starts_at is not None and ends_at <= starts_at:
        return "must be after starts_at"
    return None


def _check_schedule(ends_at: datetime | None, info: ValidationInfo) -> datetime | None:
    reason = ends_after_start(ends_at, info.data.get("starts_at"))
    if reason is not None:
        raise ValueError(reason)
    return ends_at


class SubstepIn(RequestSchema):
    key: Key | None = None
    title: Title
    body: Markdown = ""
    estimated_minutes: Minutes | None = None


class StepIn(RequestSchema):
    key: Key | None = None
    title: Title
    substeps: list[SubstepIn] = Field(min_length=1, max_length=MAX_SUBSTEPS_PER_STEP)


class WorkshopIn(RequestSchema):
    """A new workshop: at least one step, each with at least one substep. Without
    `instructor_ids` the creator teaches it; an instructor creating it always does."""

    title: Title
    description: Description = ""
    external_id: ExternalId | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    steps: list[StepIn] = Field(min_length=1, max_length=MAX_STEPS)
    instructor_ids: InstructorIds | None = None

    @field_validator("steps", mode="after")
    @classmethod
    def _total_substeps(cls, steps: list[StepIn]) -> list[StepIn]:
        _check_total(steps)
        return steps

    _schedule = field_validator("ends_at", mode="after")(_check_schedule)


class SubstepPatch(SubstepIn):
    """A substep in a PATCH: with the `id` of an existing substep it is kept and edited,
    without one it is new."""

    id: uuid.UUID | None = None


class StepPatch(RequestSchema):
    """A step in a PATCH, kept with an `id`, new without; its `key` replaces the stored one."""

    id: uuid.UUID | None = None
    key: Key | None = None
    title: Title
    substeps: list[SubstepPatch] = Field(min_length=1, max_length=MAX_SUBSTEPS_PER_STEP)


class WorkshopPatch(RequestSchema):
    """A partial update. `steps`, when given, is the whole new list: items with an `id`
    are kept (moved to their new position and edited), items without one are new, and
    existing ones left out are removed. `starts_at` and `ends_at` given as null clear them.
    `version`, when given, must be the current one."""

    title: Title | None = None
    description: Description | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    instructor_ids: InstructorIds | None = None
    steps: list[StepPatch] | None = Field(default=None, min_length=1, max_length=MAX_STEPS)
    version: Annotated[int, Field(ge=1), WholeNumber] | None = None

    @field_validator("steps", mode="after")
    @classmethod
    def _total_substeps(cls, steps: list[StepPatch] | None) -> list[StepPatch] | None:
        _check_total(steps)
        return steps

    _schedule = field_validator("ends_at", mode="after")(_check_schedule)


class SubstepOut(Schema):
    id: uuid.UUID
    key: str | None
    title: str
    body: str
    estimated_minutes: int | None


class StepOut(Schema):
    id: uuid.UUID
    key: str | None
    title: str
    substeps: list[SubstepOut]


class WorkshopSummary(Schema):
    id: uuid.UUID
    title: str
    description: str
    status: Literal["active", "archived"]
    external_id: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    instructor_ids: list[uuid.UUID]
    step_count: int
    substep_count: int
    created_at: datetime
    updated_at: datetime
    version: int


class WorkshopOut(WorkshopSummary):
    steps: list[StepOut]


class PageQuery(RequestSchema):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None


class WorkshopsQuery(PageQuery):
    status: Literal["active", "archived"] | None = None
    external_id: ExternalId | None = None


class EnrollmentsQuery(PageQuery):
    status: Literal["active", "withdrawn"] | None = None


class EnrollRequest(RequestSchema):
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_ENROLL_BATCH)


class EnrollmentOut(Schema):
    id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    status: Literal["active", "withdrawn"]
    enrolled_at: datetime
    withdrawn_at: datetime | None
    substeps_done: int
    substep_count: int
    percent: float
    completed_at: datetime | None


class EnrolledItem(EnrollmentOut):
    created: bool = Field(description="True when this request enrolled (or re-enrolled) them")


class EnrollResult(Schema):
    items: list[EnrolledItem]
    created: int = Field(description="How many enrollments this request created or reactivated")


class ProgressIn(RequestSchema):
    substep_id: uuid.UUID


class ProgressSummary(Schema):
    """One student's progress in one workshop; `percent` is 0 to 100."""

    enrollment_id: uuid.UUID
    workshop_id: uuid.UUID
    user_id: uuid.UUID
    substeps_done: int
    substep_count: int
    percent: float
    completed_steps: int
    step_count: int
    completed: bool
    completed_at: datetime | None


class SubstepProgress(Schema):
    id: uuid.UUID
    done: bool
    completed_at: datetime | None


class StepProgress(Schema):
    id: uuid.UUID
    completed: bool
    completed_at: datetime | None
    substeps: list[SubstepProgress]


class ProgressDetail(ProgressSummary):
    status: Literal["active", "withdrawn"]
    steps: list[StepProgress]
