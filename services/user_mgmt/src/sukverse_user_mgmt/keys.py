"""Typed application keys of the user management service."""

from __future__ import annotations

from aiohttp import web

from sukverse_user_mgmt.imports import ImportService
from sukverse_user_mgmt.service import ProfileService

PROFILES = web.AppKey[ProfileService]("profiles")
IMPORTS = web.AppKey[ImportService]("imports")
