"""The pure rules: percentages, histogram bands, figure deltas and risk reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sukverse_analytics.domain import (
    Contribution,
    RiskThresholds,
    StudentFacts,
    assess,
    bucket,
    contribution,
    progress_milli,
    to_milli,
)

THRESHOLDS = RiskThresholds(
    inactive_days=7, behind_pace_points=25, min_quiz_average=60, max_failed_attempts=3
)
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("percent", "band"), [(0, 0), (9.999, 0), (10, 1), (55, 5), (99.999, 9), (100, 9)]
)
def test_histogram_bands(percent: float, band: int) -> None:
    assert bucket(to_milli(percent)) == band


def test_progress_is_the_share_of_substeps_or_everything_once_completed() -> None:
    assert progress_milli(substeps_done=1, substep_count=3, completed=False) == 33_333
    assert progress_milli(substeps_done=1, substep_count=3, completed=True) == 100_000
    assert progress_milli(substeps_done=5, substep_count=4, completed=False) == 100_000
    assert progress_milli(substeps_done=0, substep_count=0, completed=False) == 0


def test_a_delta_moves_a_student_between_bands_and_sums() -> None:
    before = contribution(
        enrolled=True, completed=False, percent_milli=25_000, quiz_count=1, quiz_sum_milli=30_000
    )
    after = contribution(
        enrolled=True, completed=False, percent_milli=50_000, quiz_count=2, quiz_sum_milli=100_000
    )
    assert after.delta(before) == {
        "percent_sum_milli": 25_000,
        "grade_count": 1,
        "grade_sum_milli": 70_000,
        "b2": -1,
        "b5": 1,
    }
    assert Contribution().delta(after) == {
        "enrolled": -1,
        "percent_sum_milli": -50_000,
        "grade_count": -2,
        "grade_sum_milli": -100_000,
        "b5": -1,
    }
    assert after.delta(after) == {}


def test_each_rule_gives_its_own_reason() -> None:
    def codes(facts: StudentFacts, median: float | None = 50) -> list[str]:
        risk = assess(facts, thresholds=THRESHOLDS, cohort_median_percent=median, now=NOW)
        return [reason.code for reason in risk.reasons]

    fine = StudentFacts(
        percent=50, last_activity=NOW - timedelta(days=7), quiz_average=60, failed_attempts=2
    )
    assert codes(fine) == []
    assert codes(StudentFacts(50, NOW - timedelta(days=7, seconds=1), 60, 2)) == ["inactive"]
    assert codes(StudentFacts(24.999, NOW, None, 0)) == ["behind_pace"]
    assert codes(StudentFacts(25, NOW, None, 0)) == []
    assert codes(StudentFacts(50, NOW, 59.9, 0)) == ["low_quiz_average"]
    assert codes(StudentFacts(50, NOW, None, 3)) == ["repeated_failures"]
    assert codes(StudentFacts(100, NOW - timedelta(days=99), 10, 9)) == []
    high = assess(
        StudentFacts(0, NOW - timedelta(days=8), 10, 0),
        thresholds=THRESHOLDS,
        cohort_median_percent=None,
        now=NOW,
    )
    assert (high.level, [reason.code for reason in high.reasons]) == (
        "high",
        ["inactive", "low_quiz_average"],
    )
