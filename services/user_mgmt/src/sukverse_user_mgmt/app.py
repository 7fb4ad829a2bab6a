"""The user management service's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from sukverse_common.app import CleanupContext, create_service_app
from sukverse_common.events.bus import Bus
from sukverse_common.keys import DATABASE
from sukverse_user_mgmt.api import routes
from sukverse_user_mgmt.authclient import AuthClient
from sukverse_user_mgmt.events import consumer
from sukverse_user_mgmt.imports import ImportService
from sukverse_user_mgmt.keys import IMPORTS, PROFILES
from sukverse_user_mgmt.models import messaging
from sukverse_user_mgmt.service import ProfileService
from sukverse_user_mgmt.settings import UserMgmtSettings

MIGRATIONS = "sukverse_user_mgmt:migrations"


def create_app(
    settings: UserMgmtSettings | None = None, *, bus: Bus | None = None
) -> web.Application:
    """The user management service."""
    settings = settings or UserMgmtSettings()
    app = create_service_app(
        settings,
        title="Sukverse user management",
        version="1.0.0",
        routes=[routes],
        messaging=messaging,
        migrations=MIGRATIONS,
        consumers=[consumer],
        bus=bus,
    )
    app.cleanup_ctx.append(_profiles_ctx(settings))
    return app


def _profiles_ctx(settings: UserMgmtSettings) -> CleanupContext:
    async def profiles(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=settings.auth_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            auth = AuthClient(settings, session)
            app[PROFILES] = ProfileService(database=app[DATABASE], auth=auth)
            app[IMPORTS] = ImportService(database=app[DATABASE], auth=auth, settings=settings)
            await app[IMPORTS].mark_interrupted()
            yield
            await app[IMPORTS].close()

    return profiles
