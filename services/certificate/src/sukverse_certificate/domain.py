"""Pure rules of certificates: whether a student's facts meet a template's criteria, and
how a template's text is filled in."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass

PLACEHOLDERS = frozenset({"name", "workshop", "date", "id"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Criteria:
    """What a student must reach; `min_quiz_average` None asks nothing of quizzes."""

    min_completion_percent: float
    min_quiz_average: float | None
    required_quiz_ids: frozenset[uuid.UUID]


@dataclass(frozen=True)
class Facts:
    """What the events told about one student in one workshop."""

    completion_percent: float
    quiz_grades: Mapping[uuid.UUID, float]
    passed_quiz_ids: Collection[uuid.UUID]


def quiz_average(grades: Mapping[uuid.UUID, float]) -> float | None:
    """The mean of the student's grades over the workshop's quizzes they attempted."""
    if not grades:
        return None
    return sum(grades.values()) / len(grades)


def meets(criteria: Criteria, facts: Facts) -> bool:
    """Whether the facts meet every criterion."""
    if facts.completion_percent + 1e-9 < criteria.min_completion_percent:
        return False
    if criteria.min_quiz_average is not None:
        average = quiz_average(facts.quiz_grades)
        if average is None or average + 1e-9 < criteria.min_quiz_average:
            return False
    return criteria.required_quiz_ids <= frozenset(facts.passed_quiz_ids)


def unknown_placeholders(text: str) -> list[str]:
    """The `{…}` placeholders in a template text that are not known ones."""
    return sorted({found for found in _PLACEHOLDER.findall(text) if found not in PLACEHOLDERS})


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill in the known placeholders; plain substitution, never `str.format` (a template
    must not reach attributes of the values)."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def narrative(criteria: Criteria, *, workshop: str) -> str:
    """The criteria in words, as an Open Badges achievement states them."""
    parts = [f"Completed at least {criteria.min_completion_percent:g}% of the workshop {workshop}"]
    if criteria.min_quiz_average is not None:
        parts.append(f"an average quiz grade of at least {criteria.min_quiz_average:g}%")
    if criteria.required_quiz_ids:
        parts.append(f"passed the {len(criteria.required_quiz_ids)} required quiz(zes)")
    return "; ".join(parts) + "."
