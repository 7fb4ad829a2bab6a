"""Typed application keys of the analytics service."""

from __future__ import annotations

from aiohttp import web

from sukverse_analytics.service import AnalyticsService

ANALYTICS = web.AppKey[AnalyticsService]("analytics")
