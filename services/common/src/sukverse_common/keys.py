"""Typed keys for application and request state, declared once."""

from __future__ import annotations

from aiohttp import web

from sukverse_common.db import Database
from sukverse_common.events.bus import Bus
from sukverse_common.events.outbox import Outbox
from sukverse_common.metrics import Metrics
from sukverse_common.security import Principal, TokenVerifier
from sukverse_common.settings import ServiceSettings

SETTINGS = web.AppKey[ServiceSettings]("settings")
DATABASE = web.AppKey[Database]("database")
BUS = web.AppKey[Bus]("bus")
OUTBOX = web.AppKey[Outbox]("outbox")
METRICS = web.AppKey[Metrics]("metrics")
VERIFIER = web.AppKey[TokenVerifier]("verifier")

PRINCIPAL = web.RequestKey[Principal]("principal")
REQUEST_ID = web.RequestKey[str]("request_id")
