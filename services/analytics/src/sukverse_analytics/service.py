"""Use cases of the analytics service: figures, students at risk, thresholds."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_analytics import store
from sukverse_analytics.domain import (
    Risk,
    RiskThresholds,
    StudentFacts,
    assess,
    cohort_median,
    from_milli,
)
from sukverse_analytics.models import Thresholds, Workshop, WorkshopStats
from sukverse_analytics.schemas import (
    Reason,
    StudentFigures,
    ThresholdsIn,
    ThresholdsOut,
    WorkshopFigures,
)
from sukverse_analytics.settings import AnalyticsSettings
from sukverse_analytics.store import StudentRow
from sukverse_common.db import Database
from sukverse_common.errors import NotFound
from sukverse_common.security import Principal

Clock = Callable[[], datetime]
NO_WORKSHOP = "no workshop with this id"
THRESHOLD_FIELDS = (
    "inactive_days",
    "behind_pace_points",
    "min_quiz_average",
    "max_failed_attempts",
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_staff(caller: Principal) -> bool:
    """Admins and machine clients see every workshop."""
    return "admin" in caller.roles or caller.is_machine


def teaches(caller: Principal, workshop: Workshop) -> bool:
    return caller.user_id is not None and str(caller.user_id) in (workshop.instructor_ids or [])


@dataclass(frozen=True)
class Cohort:
    """A workshop's enrolled students assessed against its thresholds at one instant."""

    students: Sequence[StudentRow]
    risks: dict[uuid.UUID, Risk]
    median_percent: float | None

    @property
    def at_risk(self) -> int:
        return sum(risk.level != "none" for risk in self.risks.values())


def quiz_average(row: StudentRow) -> float | None:
    return from_milli(row.quiz_sum_milli / row.quiz_count) if row.quiz_count else None


def student_figures(row: StudentRow, risk: Risk) -> StudentFigures:
    return StudentFigures(
        user_id=row.user_id,
        percent=from_milli(row.percent_milli),
        substeps_done=row.substeps_done,
        substep_count=row.substep_count,
        completed=row.completed,
        last_activity=row.last_activity,
        quiz_average=quiz_average(row),
        quizzes_graded=row.quiz_count,
        failed_attempts=row.failed_attempts,
        risk=risk.level,
        reasons=[Reason(code=reason.code, message=reason.message) for reason in risk.reasons],
    )


def page_after(
    items: Sequence[StudentRow], cursor: uuid.UUID | None, limit: int
) -> tuple[list[StudentRow], str | None]:
    """A page of rows ordered by user id, after the cursor."""
    rest = [row for row in items if cursor is None or row.user_id > cursor]
    page = rest[:limit]
    return page, str(page[-1].user_id) if len(rest) > limit else None


class AnalyticsService:
    def __init__(
        self, *, settings: AnalyticsSettings, database: Database, clock: Clock = utc_now
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock

    # -- thresholds -----------------------------------------------------------------------

    def effective(self, own: Thresholds | None) -> RiskThresholds:
        defaults = RiskThresholds(
            inactive_days=self.settings.at_risk_inactive_days,
            behind_pace_points=self.settings.at_risk_behind_pace_points,
            min_quiz_average=self.settings.at_risk_min_quiz_average,
            max_failed_attempts=self.settings.at_risk_max_failed_attempts,
        )
        if own is None:
            return defaults
        return RiskThresholds(
            **{
                name: getattr(defaults, name) if getattr(own, name) is None else getattr(own, name)
                for name in THRESHOLD_FIELDS
            }
        )

    def _thresholds_out(self, workshop_id: uuid.UUID, own: Thresholds | None) -> ThresholdsOut:
        used = self.effective(own)
        return ThresholdsOut(
            workshop_id=workshop_id,
            inactive_days=used.inactive_days,
            behind_pace_points=used.behind_pace_points,
            min_quiz_average=used.min_quiz_average,
            max_failed_attempts=used.max_failed_attempts,
            overridden=[
                name
                for name in THRESHOLD_FIELDS
                if own is not None and getattr(own, name) is not None
            ],
        )

    async def thresholds(self, caller: Principal, workshop_id: uuid.UUID) -> ThresholdsOut:
        async with self.database.sessions() as session:
            await self._visible(session, caller, workshop_id)
            return self._thresholds_out(workshop_id, await store.thresholds(session, workshop_id))

    async def set_thresholds(
        self, caller: Principal, workshop_id: uuid.UUID, body: ThresholdsIn
    ) -> ThresholdsOut:
        """Replace a workshop's own thresholds (instructors of it and admins)."""
        async with self.database.sessions() as session, session.begin():
            await self._visible(session, caller, workshop_id)
            own = await store.thresholds(session, workshop_id)
            if own is None:
                own = Thresholds(workshop_id=workshop_id, updated_at=self.clock())
                session.add(own)
            for name in THRESHOLD_FIELDS:
                setattr(own, name, getattr(body, name))
            own.updated_at = self.clock()
            await session.flush()
            return self._thresholds_out(workshop_id, own)

    # -- figures --------------------------------------------------------------------------

    async def _visible(
        self, session: AsyncSession, caller: Principal, workshop_id: uuid.UUID
    ) -> Workshop:
        """The workshop, if the caller may see its figures: staff, or one who teaches it."""
        workshop = await store.workshop(session, workshop_id)
        if workshop is None or not (is_staff(caller) or teaches(caller, workshop)):
            raise NotFound(NO_WORKSHOP)
        return workshop

    async def cohort(self, session: AsyncSession, workshop_id: uuid.UUID) -> Cohort:
        students = await store.enrolled_students(session, workshop_id)
        return self.assess_cohort(
            students, self.effective(await store.thresholds(session, workshop_id))
        )

    def assess_cohort(
        self,
        students: Sequence[StudentRow],
        thresholds: RiskThresholds,
        *,
        median_percent: float | None = None,
    ) -> Cohort:
        """Assess `students` against the thresholds; the cohort's median is theirs unless
        given (when they are only some of the cohort)."""
        now = self.clock()
        median = (
            cohort_median([from_milli(row.percent_milli) for row in students])
            if median_percent is None
            else median_percent
        )
        risks = {
            row.user_id: assess(
                StudentFacts(
                    percent=from_milli(row.percent_milli),
                    last_activity=row.last_activity,
                    quiz_average=quiz_average(row),
                    failed_attempts=row.failed_attempts,
                ),
                thresholds=thresholds,
                cohort_median_percent=median,
                now=now,
            )
            for row in students
        }
        return Cohort(students=students, risks=risks, median_percent=median)

    async def workshop(self, caller: Principal, workshop_id: uuid.UUID) -> WorkshopFigures:
        async with self.database.sessions() as session:
            workshop = await self._visible(session, caller, workshop_id)
            stats = await store.stats(session, workshop_id) or WorkshopStats(
                workshop_id=workshop_id
            )
            median = store.median_of(await store.middle_percents(session, workshop_id))
            thresholds = self.effective(await store.thresholds(session, workshop_id))
            candidates = await store.risk_candidates(
                session,
                workshop_id,
                thresholds=thresholds,
                median_percent=median,
                now=self.clock(),
            )
        cohort = self.assess_cohort(candidates, thresholds, median_percent=median)
        return figures(workshop, stats, cohort)

    async def students(
        self,
        caller: Principal,
        workshop_id: uuid.UUID,
        *,
        cursor: uuid.UUID | None,
        limit: int,
        at_risk_only: bool = False,
    ) -> tuple[list[StudentFigures], str | None]:
        async with self.database.sessions() as session:
            await self._visible(session, caller, workshop_id)
            cohort = await self.cohort(session, workshop_id)
        rows = [
            row
            for row in cohort.students
            if not at_risk_only or cohort.risks[row.user_id].level != "none"
        ]
        page, next_cursor = page_after(rows, cursor, limit)
        return [student_figures(row, cohort.risks[row.user_id]) for row in page], next_cursor


def figures(workshop: Workshop, stats: WorkshopStats, cohort: Cohort) -> WorkshopFigures:
    enrolled = stats.enrolled or 0
    grades = stats.grade_count or 0
    return WorkshopFigures(
        workshop_id=workshop.workshop_id,
        title=workshop.title or "",
        archived=workshop.archived_at is not None,
        enrolled=enrolled,
        completed=stats.completed or 0,
        completion_percent=from_milli(stats.percent_sum_milli / enrolled) if enrolled else 0.0,
        completion_histogram=[count or 0 for count in stats.histogram],
        average_quiz_score=from_milli(stats.grade_sum_milli / grades) if grades else None,
        at_risk=cohort.at_risk,
        median_percent=cohort.median_percent,
        certificates_issued=stats.certificates or 0,
    )
