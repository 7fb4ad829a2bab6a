"""The services the platform knows, each with its settings and application factory.

A service's application (and everything it imports) is loaded only when that service
runs, so `sukverse serve auth` does not carry the PDF and imaging libraries of the
certificate service."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from aiohttp import web

from sukverse_analytics.settings import AnalyticsSettings
from sukverse_auth.settings import AuthSettings
from sukverse_certificate.settings import CertificateSettings
from sukverse_common.events.bus import Bus
from sukverse_common.settings import ServiceSettings
from sukverse_quiz.settings import QuizSettings
from sukverse_user_mgmt.settings import UserMgmtSettings
from sukverse_workshop.settings import WorkshopSettings

DEFAULT_PORT_BASE = 8000


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    settings: type[ServiceSettings]

    @property
    def package(self) -> str:
        return f"sukverse_{self.name}"

    @property
    def migrations(self) -> str:
        return f"{self.package}:migrations"

    @property
    def default_port(self) -> int:
        port: int = self.settings.model_fields["port"].default
        return port

    def app(self, settings: ServiceSettings, *, bus: Bus | None) -> web.Application:
        module = importlib.import_module(f"{self.package}.app")
        app: web.Application = module.create_app(settings, bus=bus)
        return app


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("auth", AuthSettings),
        ServiceSpec("user_mgmt", UserMgmtSettings),
        ServiceSpec("workshop", WorkshopSettings),
        ServiceSpec("quiz", QuizSettings),
        ServiceSpec("analytics", AnalyticsSettings),
        ServiceSpec("certificate", CertificateSettings),
    )
}
