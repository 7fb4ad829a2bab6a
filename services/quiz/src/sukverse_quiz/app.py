"""The quiz service's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sukverse_common.app import CleanupContext, create_service_app
from sukverse_common.events.bus import Bus
from sukverse_common.keys import DATABASE, OUTBOX
from sukverse_quiz.api import routes
from sukverse_quiz.events import consumer
from sukverse_quiz.keys import QUIZZES
from sukverse_quiz.models import messaging
from sukverse_quiz.service import Clock, QuizService, utc_now
from sukverse_quiz.settings import QuizSettings

MIGRATIONS = "sukverse_quiz:migrations"


def create_app(
    settings: QuizSettings | None = None, *, bus: Bus | None = None, clock: Clock = utc_now
) -> web.Application:
    """The quiz service; `clock` is the time it judges deadlines by."""
    settings = settings or QuizSettings()
    app = create_service_app(
        settings,
        title="Sukverse quiz",
        version="1.0.0",
        routes=[routes],
        messaging=messaging,
        migrations=MIGRATIONS,
        consumers=[consumer],
        bus=bus,
    )
    app.cleanup_ctx.append(_quiz_ctx(settings, clock))
    return app


def _quiz_ctx(settings: QuizSettings, clock: Clock) -> CleanupContext:
    async def quizzes(app: web.Application) -> AsyncIterator[None]:
        app[QUIZZES] = QuizService(
            settings=settings, database=app[DATABASE], outbox=app[OUTBOX], clock=clock
        )
        yield

    return quizzes
