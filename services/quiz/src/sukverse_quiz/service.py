"""Use cases of the quiz service: each owns its transaction and writes its events to the outbox."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_common.api import parse_time_cursor, time_cursor
from sukverse_common.db import Database
from sukverse_common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from sukverse_common.events.contracts import QuizAttemptSubmitted, QuizPassed
from sukverse_common.events.outbox import Outbox
from sukverse_common.security import Principal
from sukverse_quiz import store, views
from sukverse_quiz.domain import grade, has_passed, percent_of, score_answer
from sukverse_quiz.models import Answer, Attempt, Option, Question, Quiz
from sukverse_quiz.schemas import (
    AnswerIn,
    AttemptOut,
    AttemptSummary,
    MultipleChoiceIn,
    NumericIn,
    QuestionIn,
    QuizIn,
    QuizOut,
    QuizPatch,
    QuizSummary,
    QuizView,
    ShortTextIn,
    SingleChoiceIn,
    SubmissionOut,
    TrueFalseIn,
)
from sukverse_quiz.settings import QuizSettings

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
NO_QUIZ = "no such quiz"
NO_ATTEMPT = "no such attempt"


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_staff(caller: Principal) -> bool:
    """Admins and machine clients (the operator) manage every quiz."""
    return "admin" in caller.roles or caller.is_machine


def _key_taken(external_id: str) -> Conflict:
    return Conflict(
        "you already have a quiz with this external_id",
        errors=[
            {
                "field": "external_id",
                "reason": f"a quiz of yours has the external_id {external_id!r}",
            }
        ],
    )


def build_questions(questions: Sequence[QuestionIn]) -> list[Question]:
    built = []
    for position, spec in enumerate(questions):
        question = Question(
            id=uuid.uuid4(),
            position=position,
            kind=spec.kind,
            prompt=spec.prompt,
            points=spec.points,
            options=[],
        )
        if isinstance(spec, SingleChoiceIn | MultipleChoiceIn):
            question.options = [
                Option(id=uuid.uuid4(), position=i, text=option.text, correct=option.correct)
                for i, option in enumerate(spec.options)
            ]
            if isinstance(spec, MultipleChoiceIn):
                question.partial_credit = spec.partial_credit
        elif isinstance(spec, TrueFalseIn):
            question.answer = spec.answer
        elif isinstance(spec, ShortTextIn):
            question.accepted = list(spec.accepted)
        elif isinstance(spec, NumericIn):
            question.value, question.tolerance = spec.value, spec.tolerance
        built.append(question)
    return built


def answer_response(question: Question, answer: AnswerIn, field: str) -> dict[str, Any] | None:
    """The answer as stored, once it fits its question's kind; None clears it."""
    if answer.option_ids is None and answer.value is None and answer.text is None:
        return None
    kind = question.kind

    def wrong(reason: str) -> ValidationFailed:
        given = next(
            name for name in ("option_ids", "value", "text") if getattr(answer, name) is not None
        )
        return ValidationFailed(
            errors=[{"field": f"{field}.{given}", "reason": reason, "code": "answer_kind"}]
        )

    if kind in views.CHOICES:
        if answer.option_ids is None:
            raise wrong(f"a {kind} question takes `option_ids`")
        chosen = [str(option_id) for option_id in answer.option_ids]
        own = {str(option.id) for option in question.options}
        if len(set(chosen)) != len(chosen):
            raise ValidationFailed(
                errors=[{"field": f"{field}.option_ids", "reason": "an option is repeated"}]
            )
        strangers = [option_id for option_id in chosen if option_id not in own]
        if strangers:
            raise ValidationFailed(
                errors=[
                    {
                        "field": f"{field}.option_ids",
                        "reason": f"not options of this question: {', '.join(strangers)}",
                        "code": "unknown_option",
                    }
                ]
            )
        if kind == "single_choice" and len(chosen) != 1:
            raise ValidationFailed(
                errors=[{"field": f"{field}.option_ids", "reason": "choose exactly one option"}]
            )
        return {"option_ids": chosen}
    if kind == "true_false":
        if not isinstance(answer.value, bool):
            raise wrong("a true_false question takes `value`: true or false")
        return {"value": answer.value}
    if kind == "numeric":
        if answer.value is None or isinstance(answer.value, bool):
            raise wrong("a numeric question takes `value`: a number")
        return {"value": float(answer.value)}
    if answer.text is None:
        raise wrong("a short_text question takes `text`")
    return {"text": answer.text}


class QuizService:
    def __init__(
        self,
        *,
        settings: QuizSettings,
        database: Database,
        outbox: Outbox,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.database = database
        self.outbox = outbox
        self.clock = clock

    @property
    def grace(self) -> float:
        return self.settings.submit_grace_seconds

    # -- who may do what ------------------------------------------------------------------

    @staticmethod
    async def manages(session: AsyncSession, caller: Principal, quiz: Quiz) -> bool:
        """Admins, machine clients, the quiz's owner and the instructors of its workshop."""
        if is_staff(caller):
            return True
        if caller.user_id is None or not caller.has("quiz:write"):
            return False
        if quiz.owner_id == caller.user_id:
            return True
        return quiz.workshop_id is not None and await store.teaches(
            session, quiz.workshop_id, caller.user_id
        )

    @staticmethod
    async def may_attempt(session: AsyncSession, caller: Principal, quiz: Quiz) -> bool:
        """Students may attempt a quiz of no workshop, or one of a workshop they are in."""
        if caller.user_id is None or not caller.has("attempt:write"):
            return False
        if quiz.workshop_id is None:
            return True
        return await store.is_enrolled(session, quiz.workshop_id, caller.user_id)

    async def _visible(
        self,
        session: AsyncSession,
        caller: Principal,
        quiz_id: uuid.UUID,
        *,
        lock: str | None = None,
    ) -> tuple[Quiz, bool]:
        """The quiz and whether the caller manages it; 404 for those who may not see it."""
        quiz = await store.quiz(session, quiz_id, lock=lock)
        if quiz is None:
            raise NotFound(NO_QUIZ)
        if await self.manages(session, caller, quiz):
            return quiz, True
        if await self.may_attempt(session, caller, quiz):
            return quiz, False
        raise NotFound(NO_QUIZ)

    async def _own_attempt(
        self, session: AsyncSession, caller: Principal, attempt_id: uuid.UUID, now: datetime
    ) -> tuple[Attempt, Quiz]:
        """The caller's own attempt, locked; those who manage the quiz get 403, others 404."""
        attempt = await store.lock_attempt(session, attempt_id, now)
        if attempt is None:
            raise NotFound(NO_ATTEMPT)
        quiz = await store.quiz(session, attempt.quiz_id)
        assert quiz is not None
        if caller.user_id is None or attempt.user_id != caller.user_id:
            if await self.manages(session, caller, quiz):
                raise Forbidden("only the student who started an attempt may answer or submit it")
            raise NotFound(NO_ATTEMPT)
        return attempt, quiz

    # -- quizzes --------------------------------------------------------------------------

    async def create_quiz(self, caller: Principal, body: QuizIn) -> QuizOut:
        """A new quiz; a second one with the caller's `external_id` is a 409, and the unique
        (owner, external id) decides between concurrent creates."""
        now = self.clock()
        quiz = Quiz(
            id=uuid.uuid4(),
            owner_id=caller.user_id,
            workshop_id=body.workshop_id,
            external_id=body.external_id,
            external_owner=caller.subject if body.external_id is not None else None,
            title=body.title,
            pass_mark=body.pass_mark,
            max_attempts=body.max_attempts,
            time_limit_seconds=body.time_limit_seconds,
            grading=body.grading,
            shuffle_questions=body.shuffle_questions,
            shuffle_options=body.shuffle_options,
            review=body.review,
            created_at=now,
            updated_at=now,
            questions=build_questions(body.questions),
        )
        try:
            async with self.database.sessions() as session, session.begin():
                session.add(quiz)
        except IntegrityError:
            if body.external_id is None:
                raise
            raise _key_taken(body.external_id) from None
        log.info("quiz created", quiz_id=str(quiz.id), questions=len(quiz.questions))
        return views.full_quiz(quiz)

    async def quiz(self, caller: Principal, quiz_id: uuid.UUID) -> QuizView:
        async with self.database.sessions() as session:
            quiz, full = await self._visible(session, caller, quiz_id)
            return QuizView(views.full_quiz(quiz) if full else views.public_quiz(quiz))

    async def quizzes(
        self,
        caller: Principal,
        *,
        workshop_id: uuid.UUID | None,
        external_id: str | None,
        cursor: uuid.UUID | None,
        limit: int,
    ) -> tuple[list[QuizSummary], str | None]:
        """The quizzes the caller may see; with an `external_id`, only the one the caller
        itself created with it (another client's keys are never matched)."""
        user_id = caller.user_id
        async with self.database.sessions() as session:
            found = list(
                await store.list_quizzes(
                    session,
                    everything=is_staff(caller),
                    owner_id=user_id if caller.has("quiz:write") else None,
                    student_id=user_id if caller.has("attempt:write") else None,
                    workshop_id=workshop_id,
                    external_key=None if external_id is None else (caller.subject, external_id),
                    after=cursor,
                    limit=limit + 1,
                )
            )
            more = len(found) > limit
            found = found[:limit]
            return [views.quiz_summary(q) for q in found], str(found[-1].id) if more else None

    async def update_quiz(self, caller: Principal, quiz_id: uuid.UUID, body: QuizPatch) -> QuizOut:
        changes = body.model_fields_set
        async with self.database.sessions() as session, session.begin():
            quiz, full = await self._visible(session, caller, quiz_id, lock="update")
            if not full:
                raise Forbidden("only the quiz's owner and admins may change it")
            for name in sorted(changes - {"questions"}):
                value = getattr(body, name)
                if value is None and name != "time_limit_seconds":
                    raise ValidationFailed(errors=[{"field": name, "reason": "must not be null"}])
                setattr(quiz, name, value)
            if "questions" in changes:
                if body.questions is None:
                    raise ValidationFailed(
                        errors=[{"field": "questions", "reason": "must not be null"}]
                    )
                if await store.count_attempts(session, quiz.id):
                    raise Conflict("the quiz has attempts; its questions can no longer change")
                quiz.questions = build_questions(body.questions)
            quiz.updated_at = self.clock()
        return views.full_quiz(quiz)

    # -- attempts -------------------------------------------------------------------------

    def _layout(self, quiz: Quiz) -> list[dict[str, Any]]:
        """This attempt's order of questions and of each question's options."""
        shuffler = secrets.SystemRandom()
        questions = list(quiz.questions)
        if quiz.shuffle_questions:
            shuffler.shuffle(questions)
        layout = []
        for question in questions:
            option_ids = [str(option.id) for option in question.options]
            if quiz.shuffle_options:
                shuffler.shuffle(option_ids)
            layout.append({"question_id": str(question.id), "option_ids": option_ids})
        return layout

    async def start_attempt(self, caller: Principal, quiz_id: uuid.UUID) -> tuple[AttemptOut, bool]:
        """The caller's attempt in progress, or a new one while the limit allows; True when
        it is new. Concurrent starts meet at the unique (quiz, student, number)."""
        for _ in range(self.settings.start_retries):
            try:
                async with self.database.sessions() as session, session.begin():
                    return await self._start(session, caller, quiz_id)
            except IntegrityError:
                continue
        raise Conflict("too many attempts started at once; retry")

    async def _start(
        self, session: AsyncSession, caller: Principal, quiz_id: uuid.UUID
    ) -> tuple[AttemptOut, bool]:
        quiz, _ = await self._visible(session, caller, quiz_id, lock="share")
        if not await self.may_attempt(session, caller, quiz):
            raise Forbidden("only students enrolled in the quiz's workshop may attempt it")
        assert caller.user_id is not None
        now = self.clock()
        attempts = await store.attempts_of(session, quiz.id, caller.user_id)
        for attempt in attempts:
            if views.status_of(attempt, now, self.grace) == "in_progress":
                answers = await store.answers(session, attempt.id)
                return self._attempt_out(attempt, quiz, answers, full=False, now=now), False
        if len(attempts) >= quiz.max_attempts:
            raise Conflict(f"the attempt limit of this quiz ({quiz.max_attempts}) is reached")
        limit = quiz.time_limit_seconds
        attempt = Attempt(
            id=uuid.uuid4(),
            quiz_id=quiz.id,
            user_id=caller.user_id,
            number=max((a.number for a in attempts), default=0) + 1,
            layout=self._layout(quiz),
            started_at=now,
            deadline=now + timedelta(seconds=limit) if limit is not None else None,
            updated_at=now,
            late=False,
        )
        session.add(attempt)
        await session.flush()
        log.info("attempt started", attempt_id=str(attempt.id), quiz_id=str(quiz.id))
        return self._attempt_out(attempt, quiz, [], full=False, now=now), True

    def _attempt_out(
        self,
        attempt: Attempt,
        quiz: Quiz,
        answers: Sequence[Answer],
        *,
        full: bool,
        now: datetime,
    ) -> AttemptOut:
        return views.attempt_out(
            attempt, quiz, answers, full=full, now=now, grace_seconds=self.grace
        )

    async def attempt(self, caller: Principal, attempt_id: uuid.UUID) -> AttemptOut:
        async with self.database.sessions() as session:
            attempt = await store.attempt(session, attempt_id)
            if attempt is None:
                raise NotFound(NO_ATTEMPT)
            quiz = await store.quiz(session, attempt.quiz_id)
            assert quiz is not None
            full = await self.manages(session, caller, quiz)
            if not full and attempt.user_id != caller.user_id:
                raise NotFound(NO_ATTEMPT)
            answers = await store.answers(session, attempt.id)
            return self._attempt_out(attempt, quiz, answers, full=full, now=self.clock())

    async def attempts(
        self,
        caller: Principal,
        quiz_id: uuid.UUID,
        *,
        user_id: uuid.UUID | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[AttemptSummary], str | None]:
        """Every attempt for those who manage the quiz; a student's own for a student."""
        async with self.database.sessions() as session:
            quiz, full = await self._visible(session, caller, quiz_id)
            found = list(
                await store.list_attempts(
                    session,
                    quiz.id,
                    user_id=user_id if full else caller.user_id,
                    after=parse_time_cursor(cursor),
                    limit=limit + 1,
                )
            )
        more = len(found) > limit
        found = found[:limit]
        now = self.clock()
        items = [
            views.attempt_summary(a, quiz, full=full, now=now, grace_seconds=self.grace)
            for a in found
        ]
        last = found[-1] if more else None
        return items, time_cursor(last.started_at, last.id) if last else None

    async def save_answers(
        self, caller: Principal, attempt_id: uuid.UUID, answers: Sequence[AnswerIn]
    ) -> AttemptOut:
        """Each answer replaces its question's saved answer; the others stay."""
        async with self.database.sessions() as session, session.begin():
            now = self.clock()
            attempt, quiz = await self._own_attempt(session, caller, attempt_id, now)
            if attempt.submitted_at is not None:
                raise Conflict("the attempt is submitted; its answers can no longer change")
            if attempt.deadline is not None and now > views.deadline_with_grace(
                attempt, self.grace
            ):
                raise Conflict("time is up: the answers saved before the deadline count")
            questions = {question.id: question for question in quiz.questions}
            responses: dict[uuid.UUID, dict[str, Any] | None] = {}
            for index, answer in enumerate(answers):
                field = f"answers.{index}"
                question = questions.get(answer.question_id)
                if question is None:
                    raise ValidationFailed(
                        errors=[
                            {
                                "field": f"{field}.question_id",
                                "reason": "not a question of this quiz",
                                "code": "unknown_question",
                            }
                        ]
                    )
                if answer.question_id in responses:
                    raise ValidationFailed(
                        errors=[
                            {
                                "field": f"{field}.question_id",
                                "reason": "this question is answered twice in the request",
                            }
                        ]
                    )
                responses[answer.question_id] = answer_response(question, answer, field)
            saved = {a.question_id: a for a in await store.answers(session, attempt.id)}
            for question_id, response in responses.items():
                existing = saved.pop(question_id, None)
                if response is None:
                    if existing is not None:
                        await session.delete(existing)
                elif existing is None:
                    session.add(
                        Answer(
                            attempt_id=attempt.id,
                            question_id=question_id,
                            response=response,
                            saved_at=now,
                        )
                    )
                else:
                    existing.response, existing.saved_at = response, now
            await session.flush()
            current = sorted(
                await store.answers(session, attempt.id), key=lambda a: str(a.question_id)
            )
            return self._attempt_out(attempt, quiz, current, full=False, now=now)

    async def submit(self, caller: Principal, attempt_id: uuid.UUID) -> SubmissionOut:
        """Grade the saved answers once; a repeated submit returns the same result."""
        async with self.database.sessions() as session, session.begin():
            now = self.clock()
            attempt, quiz = await self._own_attempt(session, caller, attempt_id, now)
            if attempt.submitted_at is not None:
                return views.submission(attempt, quiz, full=False)
            responses = {
                str(a.question_id): a.response for a in await store.answers(session, attempt.id)
            }
            earned = {
                str(q.id): score_answer(views.question_key(q), responses.get(str(q.id)))
                for q in quiz.questions
            }
            score = round(sum(earned.values()), 6)
            max_score = quiz.max_score
            percent = percent_of(score, max_score)
            passed = has_passed(percent, quiz.pass_mark)
            late = attempt.deadline is not None and now > views.deadline_with_grace(
                attempt, self.grace
            )
            attempt.submitted_at, attempt.late, attempt.earned = now, late, earned
            attempt.score, attempt.max_score = score, max_score
            attempt.percent, attempt.passed = percent, passed
            await session.flush()
            graded = [
                (a.submitted_at, a.number, a.percent)
                for a in await store.attempts_of(session, quiz.id, attempt.user_id)
                if a.submitted_at is not None and a.percent is not None
            ]
            submitted = [percent for _, _, percent in sorted(graded)]
            attempt.grade_percent = grade(quiz.grading, submitted)  # type: ignore[arg-type]
            subject = str(quiz.id)
            await self.outbox.add(
                session,
                QuizAttemptSubmitted(
                    attempt_id=attempt.id,
                    quiz_id=quiz.id,
                    workshop_id=quiz.workshop_id,
                    user_id=attempt.user_id,
                    attempt_number=attempt.number,
                    score=score,
                    max_score=max_score,
                    percent=percent,
                    passed=passed,
                    late=late,
                    grade_percent=attempt.grade_percent,
                    submitted_at=now,
                ),
                subject=subject,
            )
            if passed and await store.record_pass(
                session, quiz_id=quiz.id, user_id=attempt.user_id, attempt_id=attempt.id, at=now
            ):
                await self.outbox.add(
                    session,
                    QuizPassed(
                        quiz_id=quiz.id,
                        workshop_id=quiz.workshop_id,
                        user_id=attempt.user_id,
                        attempt_id=attempt.id,
                        percent=percent,
                        passed_at=now,
                    ),
                    subject=subject,
                )
        log.info("attempt submitted", attempt_id=str(attempt.id), late=late, passed=passed)
        return views.submission(attempt, quiz, full=False)
