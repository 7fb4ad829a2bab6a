"""The certificate service's composition root."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from sukverse_certificate.api import routes
from sukverse_certificate.badges import KEY_FILE_NAME, BadgeKeys
from sukverse_certificate.events import consumer
from sukverse_certificate.keys import CERTIFICATES
from sukverse_certificate.models import messaging
from sukverse_certificate.service import CertificateService, Clock, utc_now
from sukverse_certificate.settings import CertificateSettings
from sukverse_certificate.workshops import WorkshopLookup
from sukverse_common.app import CleanupContext, create_service_app
from sukverse_common.events.bus import Bus
from sukverse_common.keys import DATABASE, OUTBOX

MIGRATIONS = "sukverse_certificate:migrations"
WORKSHOP_LOOKUP_SECONDS = 5.0


def create_app(
    settings: CertificateSettings | None = None, *, bus: Bus | None = None, clock: Clock = utc_now
) -> web.Application:
    """The certificate service; `clock` is the time it stamps issues and revocations with."""
    settings = settings or CertificateSettings()
    app = create_service_app(
        settings,
        title="Sukverse certificate",
        version="1.0.0",
        routes=[routes],
        messaging=messaging,
        migrations=MIGRATIONS,
        consumers=[consumer],
        bus=bus,
    )
    app.cleanup_ctx.append(_certificate_ctx(settings, clock))
    return app


def _certificate_ctx(settings: CertificateSettings, clock: Clock) -> CleanupContext:
    async def certificates(app: web.Application) -> AsyncIterator[None]:
        # Generating a 2048-bit key takes a moment: off the event loop.
        keys = (
            await asyncio.to_thread(BadgeKeys.from_file, settings.signing_key_file)
            if settings.signing_key_file is not None
            else await asyncio.to_thread(
                BadgeKeys.load_or_create, settings.data_dir / KEY_FILE_NAME
            )
        )
        timeout = aiohttp.ClientTimeout(total=WORKSHOP_LOOKUP_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            app[CERTIFICATES] = CertificateService(
                settings=settings,
                database=app[DATABASE],
                outbox=app[OUTBOX],
                keys=keys,
                workshops=WorkshopLookup(settings.workshop_url, http),
                clock=clock,
            )
            yield

    return certificates
