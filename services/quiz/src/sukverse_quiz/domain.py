"""Pure rules of quizzes: text normalisation, scoring of one answer, and grading methods."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["single_choice", "multiple_choice", "true_false", "short_text", "numeric"]
Grading = Literal["highest", "latest", "average"]
PartialCredit = Literal["all_or_nothing", "partial"]
Review = Literal["none", "score", "answers"]

PRECISION = 6


def normalise_text(text: str) -> str:
    """Compatibility-normalised, case-folded, trimmed, with inner whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


@dataclass(frozen=True)
class QuestionKey:
    """What grading needs of a question: its kind, its points and its correct answer."""

    kind: Kind
    points: float
    correct_options: frozenset[str] = field(default_factory=frozenset)
    partial_credit: PartialCredit = "all_or_nothing"
    answer: bool | None = None
    accepted: tuple[str, ...] = ()
    value: float | None = None
    tolerance: float = 0.0


def score_answer(key: QuestionKey, response: dict[str, Any] | None) -> float:
    """The points an answer earns; no answer, or one of the wrong shape, earns nothing."""
    if not response:
        return 0.0
    if key.kind in ("single_choice", "multiple_choice"):
        chosen = {str(option) for option in response.get("option_ids") or []}
        if key.kind == "single_choice":
            return key.points if len(chosen) == 1 and chosen <= key.correct_options else 0.0
        right = len(chosen & key.correct_options)
        wrong = len(chosen - key.correct_options)
        if key.partial_credit == "all_or_nothing":
            return key.points if chosen == key.correct_options else 0.0
        fraction = max(0.0, (right - wrong) / len(key.correct_options))
        return round(key.points * fraction, PRECISION)
    value = response.get("value")
    if key.kind == "true_false":
        return key.points if isinstance(value, bool) and value == key.answer else 0.0
    if key.kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float) or key.value is None:
            return 0.0
        # A hair of slack, so that 0.1 + 0.2 is within 0.3 ± 0.
        slack = 1e-9 * max(1.0, abs(key.value))
        return key.points if math.fabs(value - key.value) <= key.tolerance + slack else 0.0
    text = response.get("text")
    if not isinstance(text, str):
        return 0.0
    wanted = normalise_text(text)
    return key.points if any(normalise_text(a) == wanted for a in key.accepted) else 0.0


def percent_of(score: float, max_score: float) -> float:
    return round(score / max_score * 100, PRECISION) if max_score > 0 else 0.0


def has_passed(percent: float, pass_mark: float) -> bool:
    return percent + 1e-9 >= pass_mark


def grade(grading: Grading, percents_in_order: Sequence[float]) -> float:
    """The student's grade for a quiz from the percents of their submitted attempts,
    oldest first."""
    if not percents_in_order:
        return 0.0
    if grading == "highest":
        return max(percents_in_order)
    if grading == "latest":
        return percents_in_order[-1]
    return round(sum(percents_in_order) / len(percents_in_order), PRECISION)
