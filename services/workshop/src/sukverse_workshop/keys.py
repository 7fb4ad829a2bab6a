"""Typed application keys of the workshop service."""

from __future__ import annotations

from aiohttp import web

from sukverse_workshop.service import WorkshopService

WORKSHOPS = web.AppKey[WorkshopService]("workshops")
