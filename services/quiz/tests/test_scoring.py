"""The pure scoring and grading rules, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from sukverse_quiz.domain import (
    QuestionKey,
    grade,
    has_passed,
    normalise_text,
    percent_of,
    score_answer,
)

SINGLE = QuestionKey(kind="single_choice", points=2, correct_options=frozenset({"a"}))
ALL_OR_NOTHING = QuestionKey(
    kind="multiple_choice", points=4, correct_options=frozenset({"a", "b"})
)
PARTIAL = QuestionKey(
    kind="multiple_choice",
    points=4,
    correct_options=frozenset({"a", "b"}),
    partial_credit="partial",
)
TRUE_FALSE = QuestionKey(kind="true_false", points=1, answer=False)
SHORT = QuestionKey(kind="short_text", points=3, accepted=("Kubelet", "the  node agent"))
NUMERIC = QuestionKey(kind="numeric", points=5, value=3.14, tolerance=0.01)
EXACT = QuestionKey(kind="numeric", points=1, value=0.3, tolerance=0)


@pytest.mark.parametrize(
    ("key", "response", "expected"),
    [
        (SINGLE, {"option_ids": ["a"]}, 2),
        (SINGLE, {"option_ids": ["b"]}, 0),
        (SINGLE, {"option_ids": ["a", "b"]}, 0),
        (SINGLE, None, 0),
        (SINGLE, {"value": True}, 0),
        (ALL_OR_NOTHING, {"option_ids": ["a", "b"]}, 4),
        (ALL_OR_NOTHING, {"option_ids": ["b", "a"]}, 4),
        (ALL_OR_NOTHING, {"option_ids": ["a"]}, 0),
        (ALL_OR_NOTHING, {"option_ids": ["a", "b", "c"]}, 0),
        (PARTIAL, {"option_ids": ["a", "b"]}, 4),
        (PARTIAL, {"option_ids": ["a"]}, 2),
        (PARTIAL, {"option_ids": ["a", "c"]}, 0),
        (PARTIAL, {"option_ids": ["a", "b", "c"]}, 2),
        (PARTIAL, {"option_ids": ["c", "d"]}, 0),
        (PARTIAL, {"option_ids": []}, 0),
        (TRUE_FALSE, {"value": False}, 1),
        (TRUE_FALSE, {"value": True}, 0),
        (TRUE_FALSE, {"value": 0}, 0),
        (SHORT, {"text": "kubelet"}, 3),
        (SHORT, {"text": "  KUBELET "}, 3),
        (SHORT, {"text": "The Node\tAgent"}, 3),
        (SHORT, {"text": "\uff4b\uff55\uff42\uff45\uff4c\uff45\uff54"}, 3),
        (SHORT, {"text": "kube let"}, 0),
        (SHORT, {"option_ids": ["a"]}, 0),
        (NUMERIC, {"value": 3.14}, 5),
        (NUMERIC, {"value": 3.15}, 5),
        (NUMERIC, {"value": 3.13}, 5),
        (NUMERIC, {"value": 3.16}, 0),
        (NUMERIC, {"value": True}, 0),
        (EXACT, {"value": 0.1 + 0.2}, 1),
        (EXACT, {"value": 0.31}, 0),
    ],
)
def test_score_answer(key: QuestionKey, response: dict[str, Any] | None, expected: float) -> None:
    assert score_answer(key, response) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("method", "percents", "expected"),
    [
        ("highest", [40, 90, 60], 90),
        ("latest", [40, 90, 60], 60),
        ("average", [40, 90, 60], 63.333333),
        ("average", [], 0),
        ("highest", [0], 0),
    ],
)
def test_grading_methods(method: Any, percents: list[float], expected: float) -> None:
    assert grade(method, percents) == pytest.approx(expected)


def test_percent_and_pass_mark() -> None:
    assert percent_of(7, 10) == pytest.approx(70)
    assert percent_of(0, 0) == 0
    assert has_passed(60, 60)
    assert has_passed(percent_of(2, 3), 66.666666)
    assert not has_passed(59.99, 60)


def test_normalise_text() -> None:
    assert normalise_text("  \uff28ello\u00a0  WORLD\n") == "hello world"
    assert normalise_text("Straße") == normalise_text("STRASSE")
