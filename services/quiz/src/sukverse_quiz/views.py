"""How quizzes and attempts look to a caller: with answers for those who manage a quiz,
without them for students, and results as the quiz's review setting allows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sukverse_quiz.domain import QuestionKey
from sukverse_quiz.models import Answer, Attempt, Question, Quiz
from sukverse_quiz.schemas import (
    AnswerOut,
    AttemptOut,
    AttemptStatus,
    AttemptSummary,
    CorrectAnswer,
    MultipleChoiceOut,
    NumericOut,
    OptionOut,
    PublicOption,
    PublicQuestion,
    PublicQuizOut,
    QuestionOut,
    QuestionResult,
    QuizOut,
    QuizSummary,
    ShortTextOut,
    SingleChoiceOut,
    SubmissionOut,
    TrueFalseOut,
)

CHOICES = ("single_choice", "multiple_choice")


def question_key(question: Question) -> QuestionKey:
    return QuestionKey(
        kind=question.kind,  # type: ignore[arg-type]
        points=question.points,
        correct_options=frozenset(str(o.id) for o in question.options if o.correct),
        partial_credit=question.partial_credit or "all_or_nothing",  # type: ignore[arg-type]
        answer=question.answer,
        accepted=tuple(question.accepted or ()),
        value=question.value,
        tolerance=question.tolerance or 0.0,
    )


def full_question(question: Question) -> QuestionOut:
    common: dict[str, Any] = {
        "id": question.id,
        "prompt": question.prompt,
        "points": question.points,
    }
    options = [OptionOut(id=o.id, text=o.text, correct=o.correct) for o in question.options]
    if question.kind == "single_choice":
        return SingleChoiceOut(kind="single_choice", options=options, **common)
    if question.kind == "multiple_choice":
        return MultipleChoiceOut(
            kind="multiple_choice",
            options=options,
            partial_credit=question.partial_credit or "all_or_nothing",
            **common,
        )
    if question.kind == "true_false":
        return TrueFalseOut(kind="true_false", answer=bool(question.answer), **common)
    if question.kind == "short_text":
        return ShortTextOut(kind="short_text", accepted=list(question.accepted or []), **common)
    return NumericOut(
        kind="numeric", value=question.value or 0.0, tolerance=question.tolerance or 0.0, **common
    )


def public_question(
    question: Question, option_order: Sequence[str] | None = None
) -> PublicQuestion:
    options = None
    if question.kind in CHOICES:
        by_id = {str(option.id): option for option in question.options}
        order = option_order or list(by_id)
        options = [PublicOption(id=by_id[i].id, text=by_id[i].text) for i in order if i in by_id]
    return PublicQuestion(
        id=question.id,
        kind=question.kind,
        prompt=question.prompt,
        points=question.points,
        options=options,
        partial_credit=question.partial_credit if question.kind == "multiple_choice" else None,
    )


def _quiz_fields(quiz: Quiz) -> dict[str, Any]:
    return {
        "id": quiz.id,
        "owner_id": quiz.owner_id,
        "workshop_id": quiz.workshop_id,
        "external_id": quiz.external_id,
        "title": quiz.title,
        "pass_mark": quiz.pass_mark,
        "max_attempts": quiz.max_attempts,
        "time_limit_seconds": quiz.time_limit_seconds,
        "grading": quiz.grading,
        "shuffle_questions": quiz.shuffle_questions,
        "shuffle_options": quiz.shuffle_options,
        "review": quiz.review,
        "max_score": quiz.max_score,
        "created_at": quiz.created_at,
        "updated_at": quiz.updated_at,
    }


def full_quiz(quiz: Quiz) -> QuizOut:
    return QuizOut(questions=[full_question(q) for q in quiz.questions], **_quiz_fields(quiz))


def public_quiz(quiz: Quiz) -> PublicQuizOut:
    return PublicQuizOut(
        questions=[public_question(q) for q in quiz.questions], **_quiz_fields(quiz)
    )


def quiz_summary(quiz: Quiz) -> QuizSummary:
    return QuizSummary(
        id=quiz.id,
        owner_id=quiz.owner_id,
        workshop_id=quiz.workshop_id,
        external_id=quiz.external_id,
        title=quiz.title,
        pass_mark=quiz.pass_mark,
        max_attempts=quiz.max_attempts,
        time_limit_seconds=quiz.time_limit_seconds,
        grading=quiz.grading,
        question_count=len(quiz.questions),
        max_score=quiz.max_score,
        created_at=quiz.created_at,
    )


def status_of(attempt: Attempt, now: datetime, grace_seconds: float) -> AttemptStatus:
    if attempt.submitted_at is not None:
        return "submitted"
    if attempt.deadline is not None and now > deadline_with_grace(attempt, grace_seconds):
        return "expired"
    return "in_progress"


def deadline_with_grace(attempt: Attempt, grace_seconds: float) -> datetime:
    assert attempt.deadline is not None
    return attempt.deadline + timedelta(seconds=grace_seconds)


def answer_out(answer: Answer) -> AnswerOut:
    response = answer.response
    return AnswerOut(
        question_id=answer.question_id,
        option_ids=[uuid.UUID(i) for i in response["option_ids"]]
        if "option_ids" in response
        else None,
        value=response.get("value"),
        text=response.get("text"),
        saved_at=answer.saved_at,
    )


def correct_answer(question: Question) -> CorrectAnswer:
    if question.kind in CHOICES:
        return CorrectAnswer(option_ids=[o.id for o in question.options if o.correct])
    if question.kind == "true_false":
        return CorrectAnswer(value=question.answer)
    if question.kind == "numeric":
        return CorrectAnswer(value=question.value, tolerance=question.tolerance)
    return CorrectAnswer(accepted=list(question.accepted or []))


def submission(attempt: Attempt, quiz: Quiz, *, full: bool) -> SubmissionOut:
    """A submitted attempt's result: everything for those who manage the quiz, what the
    review setting allows for the student."""
    assert attempt.submitted_at is not None
    review = "answers" if full else quiz.review
    scores = review != "none"
    questions = None
    if review == "answers":
        earned = attempt.earned or {}
        questions = [
            QuestionResult(
                question_id=q.id,
                points=q.points,
                earned=earned.get(str(q.id), 0.0),
                correct=earned.get(str(q.id), 0.0) >= q.points,
                correct_answer=correct_answer(q),
            )
            for q in quiz.questions
        ]
    return SubmissionOut(
        attempt_id=attempt.id,
        quiz_id=attempt.quiz_id,
        number=attempt.number,
        submitted_at=attempt.submitted_at,
        late=attempt.late,
        review=quiz.review,
        score=attempt.score if scores else None,
        max_score=attempt.max_score if scores else None,
        percent=attempt.percent if scores else None,
        passed=attempt.passed if scores else None,
        grade_percent=attempt.grade_percent if scores else None,
        questions=questions,
    )


def attempt_out(
    attempt: Attempt,
    quiz: Quiz,
    answers: Sequence[Answer],
    *,
    full: bool,
    now: datetime,
    grace_seconds: float,
) -> AttemptOut:
    by_id = {str(q.id): q for q in quiz.questions}
    questions = [
        public_question(by_id[entry["question_id"]], entry.get("option_ids"))
        for entry in attempt.layout
        if entry["question_id"] in by_id
    ]
    return AttemptOut(
        id=attempt.id,
        quiz_id=attempt.quiz_id,
        user_id=attempt.user_id,
        number=attempt.number,
        status=status_of(attempt, now, grace_seconds),
        started_at=attempt.started_at,
        deadline=attempt.deadline,
        submitted_at=attempt.submitted_at,
        questions=questions,
        answers=[answer_out(a) for a in answers],
        result=submission(attempt, quiz, full=full) if attempt.submitted_at else None,
    )


def attempt_summary(
    attempt: Attempt, quiz: Quiz, *, full: bool, now: datetime, grace_seconds: float
) -> AttemptSummary:
    scores = attempt.submitted_at is not None and (full or quiz.review != "none")
    return AttemptSummary(
        id=attempt.id,
        quiz_id=attempt.quiz_id,
        user_id=attempt.user_id,
        number=attempt.number,
        status=status_of(attempt, now, grace_seconds),
        started_at=attempt.started_at,
        deadline=attempt.deadline,
        submitted_at=attempt.submitted_at,
        late=attempt.late,
        score=attempt.score if scores else None,
        max_score=attempt.max_score if scores else None,
        percent=attempt.percent if scores else None,
        passed=attempt.passed if scores else None,
    )
