"""Typed application keys of the auth service."""

from __future__ import annotations

from aiohttp import web

from sukverse_auth.passwords import Hasher
from sukverse_auth.service import AuthService
from sukverse_auth.tokens import SigningKeys

AUTH = web.AppKey[AuthService]("auth")
SIGNING_KEYS = web.AppKey[SigningKeys]("signing_keys")
HASHER = web.AppKey[Hasher]("hasher")
