"""Request and response bodies of the quiz service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import Field, RootModel, StrictBool, StringConstraints, model_validator

from sukverse_common.api import (
    ExternalId,
    IdCursor,
    NotBlank,
    RequestSchema,
    Schema,
    WholeNumber,
    unset,
)
from sukverse_quiz.domain import Grading, Kind, PartialCredit, Review, normalise_text

MAX_QUESTIONS = 200
MAX_OPTIONS = 20
MAX_ACCEPTED = 50
MAX_ATTEMPTS_LIMIT = 100
MAX_TIME_LIMIT_SECONDS = 7 * 24 * 3600

Title = Annotated[str, StringConstraints(max_length=200), NotBlank]
Prompt = Annotated[str, StringConstraints(max_length=5000), NotBlank]
OptionText = Annotated[str, StringConstraints(max_length=1000), NotBlank]
AcceptedText = Annotated[str, StringConstraints(min_length=1, max_length=500)]
AnswerText = Annotated[str, StringConstraints(max_length=1000)]
Points = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
Number = Annotated[float, Field(strict=True, ge=-1e15, le=1e15, allow_inf_nan=False)]
PassMark = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
MaxAttempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS_LIMIT), WholeNumber]
TimeLimit = Annotated[int, Field(ge=1, le=MAX_TIME_LIMIT_SECONDS), WholeNumber]


# -- quizzes in ---------------------------------------------------------------------------

# An option marked correct: how many a choice question has is in its schema too.
CORRECT_OPTION: dict[str, Any] = {
    "type": "object",
    "properties": {"correct": {"const": True}},
    "required": ["correct"],
}


class OptionIn(RequestSchema):
    text: OptionText
    correct: StrictBool = False


class _QuestionIn(RequestSchema):
    prompt: Prompt
    points: Points = 1.0


class SingleChoiceIn(_QuestionIn):
    """Exactly one option is correct."""

    kind: Literal["single_choice"]
    options: list[OptionIn] = Field(
        min_length=2,
        max_length=MAX_OPTIONS,
        json_schema_extra={"contains": CORRECT_OPTION, "minContains": 1, "maxContains": 1},
    )

    @model_validator(mode="after")
    def _one_correct(self) -> Self:
        if sum(option.correct for option in self.options) != 1:
            raise ValueError("a single_choice question needs exactly one correct option")
        return self


class MultipleChoiceIn(_QuestionIn):
    """One or more options are correct; `partial_credit` says how a partly right answer
    scores: nothing (`all_or_nothing`), or (right chosen - wrong chosen) / all right, at
    least 0, of the points (`partial`)."""

    kind: Literal["multiple_choice"]
    options: list[OptionIn] = Field(
        min_length=2,
        max_length=MAX_OPTIONS,
        json_schema_extra={"contains": CORRECT_OPTION, "minContains": 1},
    )
    partial_credit: PartialCredit = "all_or_nothing"

    @model_validator(mode="after")
    def _some_correct(self) -> Self:
        if not any(option.correct for option in self.options):
            raise ValueError("a multiple_choice question needs at least one correct option")
        return self


class TrueFalseIn(_QuestionIn):
    kind: Literal["true_false"]
    answer: StrictBool


class ShortTextIn(_QuestionIn):
    """An answer is right when it equals an accepted one, both normalised (NFKC,
    case-folded, trimmed, inner whitespace collapsed)."""

    kind: Literal["short_text"]
    accepted: list[AcceptedText] = Field(min_length=1, max_length=MAX_ACCEPTED)

    @model_validator(mode="after")
    def _not_blank(self) -> Self:
        if any(not normalise_text(text) for text in self.accepted):
            raise ValueError("an accepted answer must not be blank")
        return self


class NumericIn(_QuestionIn):
    """An answer is right when it is within `tolerance` of `value`."""

    kind: Literal["numeric"]
    value: Number
    tolerance: Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)] = 0.0


QuestionIn = Annotated[
    SingleChoiceIn | MultipleChoiceIn | TrueFalseIn | ShortTextIn | NumericIn,
    Field(discriminator="kind"),
]


class QuizIn(RequestSchema):
    """A quiz. `review` says what a student sees of a submitted attempt: `none` (that it
    was submitted), `score` (score, percent, passed) or `answers` (also each question's
    points and its correct answer). `external_id` names at most one quiz of the caller's."""

    title: Title
    workshop_id: uuid.UUID | None = None
    external_id: ExternalId | None = None
    pass_mark: PassMark = 50.0
    max_attempts: MaxAttempts = 1
    time_limit_seconds: TimeLimit | None = None
    grading: Grading = "highest"
    shuffle_questions: StrictBool = False
    shuffle_options: StrictBool = False
    review: Review = "score"
    questions: list[QuestionIn] = Field(min_length=1, max_length=MAX_QUESTIONS)


class QuizPatch(RequestSchema):
    """Changes to a quiz; `questions` replaces them all, and only while nobody attempted it."""

    title: Title | None = unset()
    pass_mark: PassMark | None = unset()
    max_attempts: MaxAttempts | None = unset()
    # null: no time limit.
    time_limit_seconds: TimeLimit | None = None
    grading: Grading | None = unset()
    shuffle_questions: bool | None = unset()
    shuffle_options: bool | None = unset()
    review: Review | None = unset()
    questions: list[QuestionIn] | None = unset(min_length=1, max_length=MAX_QUESTIONS)


class QuizzesQuery(RequestSchema):
    workshop_id: uuid.UUID | None = None
    external_id: ExternalId | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: IdCursor | None = None


class AttemptsQuery(RequestSchema):
    user_id: uuid.UUID | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str, StringConstraints(max_length=100)] | None = None


# -- quizzes out --------------------------------------------------------------------------


class OptionOut(Schema):
    id: uuid.UUID
    text: str
    correct: bool


class _QuestionOut(Schema):
    id: uuid.UUID
    prompt: str
    points: float


class SingleChoiceOut(_QuestionOut):
    kind: Literal["single_choice"]
    options: list[OptionOut]


class MultipleChoiceOut(_QuestionOut):
    kind: Literal["multiple_choice"]
    options: list[OptionOut]
    partial_credit: PartialCredit


class TrueFalseOut(_QuestionOut):
    kind: Literal["true_false"]
    answer: StrictBool


class ShortTextOut(_QuestionOut):
    kind: Literal["short_text"]
    accepted: list[str]


class NumericOut(_QuestionOut):
    kind: Literal["numeric"]
    value: float
    tolerance: float


QuestionOut = Annotated[
    SingleChoiceOut | MultipleChoiceOut | TrueFalseOut | ShortTextOut | NumericOut,
    Field(discriminator="kind"),
]


class PublicOption(Schema):
    id: uuid.UUID
    text: str


class PublicQuestion(Schema):
    """A question as a student sees it: no correct answers. `options` only for choices."""

    id: uuid.UUID
    kind: Kind
    prompt: str
    points: float
    options: list[PublicOption] | None = None
    partial_credit: PartialCredit | None = None


class _QuizCommon(Schema):
    id: uuid.UUID
    owner_id: uuid.UUID | None
    workshop_id: uuid.UUID | None
    external_id: str | None
    title: str
    pass_mark: float
    max_attempts: int
    time_limit_seconds: int | None
    grading: Grading
    shuffle_questions: bool
    shuffle_options: bool
    review: Review
    max_score: float
    created_at: datetime
    updated_at: datetime


class QuizOut(_QuizCommon):
    """A quiz with its answers: what its owner and admins see."""

    view: Literal["full"] = "full"
    questions: list[QuestionOut]


class PublicQuizOut(_QuizCommon):
    """A quiz as a student sees it: questions without answers."""

    view: Literal["student"] = "student"
    questions: list[PublicQuestion]


class QuizView(RootModel[QuizOut | PublicQuizOut]):
    """A quiz as the caller may see it (`view` says which)."""


class QuizSummary(Schema):
    id: uuid.UUID
    owner_id: uuid.UUID | None
    workshop_id: uuid.UUID | None
    external_id: str | None
    title: str
    pass_mark: float
    max_attempts: int
    time_limit_seconds: int | None
    grading: Grading
    question_count: int
    max_score: float
    created_at: datetime


# -- attempts -----------------------------------------------------------------------------


class AnswerIn(RequestSchema):
    """One answer: `option_ids` for choices, `value` (a boolean) for true/false, `value`
    (a number) for numeric, `text` for short text. None of them clears the answer."""

    question_id: uuid.UUID
    option_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_OPTIONS)
    value: StrictBool | Number | None = None
    text: AnswerText | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        given = [self.option_ids is not None, self.value is not None, self.text is not None]
        if sum(given) > 1:
            raise ValueError("give one of option_ids, value or text")
        return self


class AnswersIn(RequestSchema):
    """Answers to save; each replaces the saved answer of its question, others stay."""

    answers: list[AnswerIn] = Field(max_length=MAX_QUESTIONS)


class AnswerOut(Schema):
    question_id: uuid.UUID
    option_ids: list[uuid.UUID] | None = None
    value: bool | float | None = None
    text: str | None = None
    saved_at: datetime


class CorrectAnswer(Schema):
    option_ids: list[uuid.UUID] | None = None
    value: bool | float | None = None
    tolerance: float | None = None
    accepted: list[str] | None = None


class QuestionResult(Schema):
    question_id: uuid.UUID
    points: float
    earned: float
    correct: bool
    correct_answer: CorrectAnswer


class SubmissionOut(Schema):
    """A submitted attempt's result; the score fields are null when the quiz's review
    setting hides them from the student, `questions` unless it shows the answers."""

    attempt_id: uuid.UUID
    quiz_id: uuid.UUID
    number: int
    submitted_at: datetime
    late: bool
    review: Review
    score: float | None
    max_score: float | None
    percent: float | None
    passed: bool | None
    grade_percent: float | None
    questions: list[QuestionResult] | None


AttemptStatus = Literal["in_progress", "expired", "submitted"]


class AttemptOut(Schema):
    """An attempt: its questions (without answers) in its own order, the saved answers,
    and once submitted, its result."""

    id: uuid.UUID
    quiz_id: uuid.UUID
    user_id: uuid.UUID
    number: int
    status: AttemptStatus
    started_at: datetime
    deadline: datetime | None
    submitted_at: datetime | None
    questions: list[PublicQuestion]
    answers: list[AnswerOut]
    result: SubmissionOut | None


class AttemptSummary(Schema):
    id: uuid.UUID
    quiz_id: uuid.UUID
    user_id: uuid.UUID
    number: int
    status: AttemptStatus
    started_at: datetime
    deadline: datetime | None
    submitted_at: datetime | None
    late: bool
    score: float | None
    max_score: float | None
    percent: float | None
    passed: bool | None
