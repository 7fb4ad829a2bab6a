"""Routes of the quiz service: parse, call one use case, render."""

from __future__ import annotations

from aiohttp import web

from sukverse_common.api import JSON, Page, Routes, path_uuid, principal
from sukverse_quiz.keys import QUIZZES
from sukverse_quiz.schemas import (
    AnswersIn,
    AttemptOut,
    AttemptsQuery,
    AttemptSummary,
    QuizIn,
    QuizOut,
    QuizPatch,
    QuizSummary,
    QuizView,
    QuizzesQuery,
    SubmissionOut,
)

routes = Routes("quiz")


@routes.post(
    "/quizzes", body=QuizIn, response=QuizOut, status=201, permission="quiz:write", errors=(409,)
)
async def create_quiz(request: web.Request, body: QuizIn) -> QuizOut:
    """Create a quiz owned by the caller; questions and options come back with ids.

    An `external_id` names at most one quiz of the caller: a second create with it is a
    409 naming `external_id`, and `GET /quizzes?external_id=` finds the first."""
    return await request.app[QUIZZES].create_quiz(principal(request), body)


@routes.get("/quizzes", query=QuizzesQuery, response=Page[QuizSummary], permission="quiz:read")
async def list_quizzes(request: web.Request, query: QuizzesQuery) -> Page[QuizSummary]:
    """Quizzes the caller may see: their own (instructors), those they may attempt
    (students), all (admins). `external_id` keeps the one the caller created with it."""
    items, cursor = await request.app[QUIZZES].quizzes(
        principal(request),
        workshop_id=query.workshop_id,
        external_id=query.external_id,
        cursor=query.cursor,
        limit=query.limit,
    )
    return Page[QuizSummary](items=items, next_cursor=cursor)


@routes.get("/quizzes/{id}", response=QuizView, permission="quiz:read", errors=(404,))
async def get_quiz(request: web.Request) -> QuizView:
    """A quiz: with answers for its owner and admins, without them for students."""
    return await request.app[QUIZZES].quiz(principal(request), path_uuid(request))


@routes.patch(
    "/quizzes/{id}",
    body=QuizPatch,
    response=QuizOut,
    permission="quiz:write",
    errors=(404, 409),
)
async def update_quiz(request: web.Request, body: QuizPatch) -> QuizOut:
    """Change a quiz; its questions only while nobody has attempted it (else 409)."""
    return await request.app[QUIZZES].update_quiz(principal(request), path_uuid(request), body)


@routes.post(
    "/quizzes/{id}/attempts",
    response=AttemptOut,
    status=201,
    also=(200,),
    permission="attempt:write",
    errors=(404, 409),
)
async def start_attempt(request: web.Request) -> web.Response:
    """Start an attempt (201), or get back the one in progress (200); 409 at the limit."""
    attempt, created = await request.app[QUIZZES].start_attempt(
        principal(request), path_uuid(request)
    )
    return web.Response(
        body=attempt.model_dump_json(), status=201 if created else 200, content_type=JSON
    )


@routes.get(
    "/quizzes/{id}/attempts",
    query=AttemptsQuery,
    response=Page[AttemptSummary],
    permission="quiz:read",
    errors=(404,),
)
async def list_attempts(request: web.Request, query: AttemptsQuery) -> Page[AttemptSummary]:
    """A quiz's attempts: all of them for its owner and admins, a student's own for them."""
    items, cursor = await request.app[QUIZZES].attempts(
        principal(request),
        path_uuid(request),
        user_id=query.user_id,
        cursor=query.cursor,
        limit=query.limit,
    )
    return Page[AttemptSummary](items=items, next_cursor=cursor)


@routes.get("/attempts/{id}", response=AttemptOut, permission="quiz:read", errors=(404,))
async def get_attempt(request: web.Request) -> AttemptOut:
    """An attempt: its questions in its order, its saved answers and, once submitted, its
    result as the review setting allows."""
    return await request.app[QUIZZES].attempt(principal(request), path_uuid(request))


@routes.put(
    "/attempts/{id}/answers",
    body=AnswersIn,
    response=AttemptOut,
    permission="attempt:write",
    errors=(404, 409),
)
async def save_answers(request: web.Request, body: AnswersIn) -> AttemptOut:
    """Save answers of one's own attempt before it is submitted and before its deadline;
    each replaces the saved answer of its question (no value clears it)."""
    return await request.app[QUIZZES].save_answers(
        principal(request), path_uuid(request), body.answers
    )


@routes.post(
    "/attempts/{id}/submit",
    response=SubmissionOut,
    permission="attempt:write",
    errors=(404,),
)
async def submit_attempt(request: web.Request) -> SubmissionOut:
    """Submit one's own attempt: grades the saved answers; late past the time limit;
    a repeated submit returns the same result."""
    return await request.app[QUIZZES].submit(principal(request), path_uuid(request))
