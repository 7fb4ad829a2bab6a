"""Typed application keys of the quiz service."""

from __future__ import annotations

from aiohttp import web

from sukverse_quiz.service import QuizService

QUIZZES = web.AppKey[QuizService]("quizzes")
