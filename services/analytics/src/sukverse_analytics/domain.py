"""Pure rules of analytics: a student's percentage, what they add to their workshop's
figures, and whether they are at risk (and why)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Literal

MILLI = 1000  # stored percentages and grades are in thousandths of a percent
FULL = 100 * MILLI

RiskCode = Literal["inactive", "behind_pace", "low_quiz_average", "repeated_failures"]
RiskLevel = Literal["none", "medium", "high"]


def to_milli(percent: float) -> int:
    """A percentage 0-100 as an integer number of thousandths, clamped."""
    return max(0, min(FULL, round(percent * MILLI)))


def from_milli(value: float) -> float:
    return round(value / MILLI, 3)


def progress_milli(*, substeps_done: int, substep_count: int, completed: bool) -> int:
    """A student's completion: everything once the workshop is completed, else the share
    of substeps done."""
    if completed:
        return FULL
    if substep_count <= 0:
        return 0
    return min(FULL, (FULL * substeps_done) // substep_count)


def bucket(percent_milli: int) -> int:
    """The histogram bucket 0-9 of a percentage; 100 falls in the last one."""
    return min(9, percent_milli // (10 * MILLI))


@dataclass(frozen=True)
class Contribution:
    """What one student adds to their workshop's figures (zero unless enrolled)."""

    enrolled: int = 0
    completed: int = 0
    percent_sum_milli: int = 0
    grade_count: int = 0
    grade_sum_milli: int = 0
    bucket: int | None = None

    def delta(self, before: Contribution) -> dict[str, int]:
        """The column increments that turn `before` into this contribution."""
        changes = {
            "enrolled": self.enrolled - before.enrolled,
            "completed": self.completed - before.completed,
            "percent_sum_milli": self.percent_sum_milli - before.percent_sum_milli,
            "grade_count": self.grade_count - before.grade_count,
            "grade_sum_milli": self.grade_sum_milli - before.grade_sum_milli,
        }
        if before.bucket != self.bucket:
            if before.bucket is not None:
                changes[f"b{before.bucket}"] = -1
            if self.bucket is not None:
                changes[f"b{self.bucket}"] = 1
        return {column: value for column, value in changes.items() if value}


def contribution(
    *,
    enrolled: bool,
    completed: bool,
    percent_milli: int,
    quiz_count: int,
    quiz_sum_milli: int,
) -> Contribution:
    if not enrolled:
        return Contribution()
    return Contribution(
        enrolled=1,
        completed=int(completed),
        percent_sum_milli=percent_milli,
        grade_count=quiz_count,
        grade_sum_milli=quiz_sum_milli,
        bucket=bucket(percent_milli),
    )


@dataclass(frozen=True)
class RiskThresholds:
    inactive_days: int
    behind_pace_points: float
    min_quiz_average: float
    max_failed_attempts: int


@dataclass(frozen=True)
class StudentFacts:
    """What the risk rules look at, of one enrolled student."""

    percent: float
    last_activity: datetime | None
    quiz_average: float | None
    failed_attempts: int


@dataclass(frozen=True)
class RiskReason:
    code: RiskCode
    message: str


@dataclass(frozen=True)
class Risk:
    level: RiskLevel
    reasons: tuple[RiskReason, ...]


def cohort_median(percents: list[float]) -> float | None:
    return float(median(percents)) if percents else None


def assess(
    student: StudentFacts,
    *,
    thresholds: RiskThresholds,
    cohort_median_percent: float | None,
    now: datetime,
) -> Risk:
    """The reasons a student is at risk, each one something a person can act on; one
    reason is a medium risk, two or more a high one. A completed workshop is no risk."""
    if student.percent >= 100:
        return Risk("none", ())
    reasons: list[RiskReason] = []
    if student.last_activity is not None:
        idle = now - student.last_activity
        if idle > timedelta(days=thresholds.inactive_days):
            reasons.append(
                RiskReason(
                    "inactive",
                    f"no activity for {idle.days} days (threshold {thresholds.inactive_days})",
                )
            )
    if cohort_median_percent is not None:
        gap = cohort_median_percent - student.percent
        if gap > thresholds.behind_pace_points:
            reasons.append(
                RiskReason(
                    "behind_pace",
                    f"{gap:g} points behind the cohort's median of {cohort_median_percent:g}% "
                    f"(threshold {thresholds.behind_pace_points:g})",
                )
            )
    if student.quiz_average is not None and student.quiz_average < thresholds.min_quiz_average:
        reasons.append(
            RiskReason(
                "low_quiz_average",
                f"quiz average {student.quiz_average:g}% is under {thresholds.min_quiz_average:g}%",
            )
        )
    if student.failed_attempts >= thresholds.max_failed_attempts:
        reasons.append(
            RiskReason(
                "repeated_failures",
                f"{student.failed_attempts} failed quiz attempts "
                f"(threshold {thresholds.max_failed_attempts})",
            )
        )
    level: RiskLevel = "none" if not reasons else "medium" if len(reasons) == 1 else "high"
    return Risk(level, tuple(reasons))
