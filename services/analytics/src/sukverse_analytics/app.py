"""The analytics service's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sukverse_analytics.api import routes
from sukverse_analytics.events import consumer
from sukverse_analytics.gauges import WorkshopCollector, scrape_middleware
from sukverse_analytics.keys import ANALYTICS
from sukverse_analytics.models import messaging
from sukverse_analytics.service import AnalyticsService, Clock, utc_now
from sukverse_analytics.settings import AnalyticsSettings
from sukverse_common.app import CleanupContext, create_service_app
from sukverse_common.events.bus import Bus
from sukverse_common.keys import DATABASE, METRICS

MIGRATIONS = "sukverse_analytics:migrations"


def create_app(
    settings: AnalyticsSettings | None = None, *, bus: Bus | None = None, clock: Clock = utc_now
) -> web.Application:
    """The analytics service; `clock` is the time it judges inactivity by."""
    settings = settings or AnalyticsSettings()
    app = create_service_app(
        settings,
        title="Sukverse analytics",
        version="1.0.0",
        routes=[routes],
        messaging=messaging,
        migrations=MIGRATIONS,
        consumers=[consumer],
        bus=bus,
    )
    collector = WorkshopCollector(settings.gauges_max_age_seconds)
    app[METRICS].registry.register(collector)
    app.middlewares.append(scrape_middleware(ANALYTICS, collector))
    app.cleanup_ctx.append(_analytics_ctx(settings, clock))
    return app


def _analytics_ctx(settings: AnalyticsSettings, clock: Clock) -> CleanupContext:
    async def analytics(app: web.Application) -> AsyncIterator[None]:
        app[ANALYTICS] = AnalyticsService(settings=settings, database=app[DATABASE], clock=clock)
        yield

    return analytics
