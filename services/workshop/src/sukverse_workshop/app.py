"""The workshop service's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sukverse_common.app import CleanupContext, create_service_app
from sukverse_common.events.bus import Bus
from sukverse_common.keys import DATABASE, OUTBOX
from sukverse_workshop.api import routes
from sukverse_workshop.keys import WORKSHOPS
from sukverse_workshop.models import messaging
from sukverse_workshop.service import WorkshopService
from sukverse_workshop.settings import WorkshopSettings

MIGRATIONS = "sukverse_workshop:migrations"


def create_app(
    settings: WorkshopSettings | None = None, *, bus: Bus | None = None
) -> web.Application:
    settings = settings or WorkshopSettings()
    app = create_service_app(
        settings,
        title="Sukverse workshop",
        version="1.0.0",
        routes=[routes],
        messaging=messaging,
        migrations=MIGRATIONS,
        bus=bus,
    )
    app.cleanup_ctx.append(_workshop_ctx(settings))
    return app


def _workshop_ctx(settings: WorkshopSettings) -> CleanupContext:
    async def workshops(app: web.Application) -> AsyncIterator[None]:
        app[WORKSHOPS] = WorkshopService(
            database=app[DATABASE],
            outbox=app[OUTBOX],
            cache_size=settings.workshop_cache_entries,
        )
        yield

    return workshops
