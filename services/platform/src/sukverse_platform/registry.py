"""The services the platform knows, each with its settings and application factory.

A service's settings and application (and everything they import) are loaded only when
that service runs, so `sukverse serve auth` does not carry the PDF and imaging libraries of
the certificate service."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property

from aiohttp import web

from sukverse_common.events.bus import Bus
from sukverse_common.settings import ServiceSettings

DEFAULT_PORT_BASE = 8000


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    settings_class: str  # in the service's `settings` module

    @property
    def package(self) -> str:
        return f"sukverse_{self.name}"

    @cached_property
    def settings(self) -> type[ServiceSettings]:
        """The service's settings class, imported when first asked for: `serve NAME` loads
        the settings of that service alone."""
        module = importlib.import_module(f"{self.package}.settings")
        settings: type[ServiceSettings] = getattr(module, self.settings_class)
        return settings

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
        ServiceSpec("auth", "AuthSettings"),
        ServiceSpec("user_mgmt", "UserMgmtSettings"),
        ServiceSpec("workshop", "WorkshopSettings"),
        ServiceSpec("quiz", "QuizSettings"),
        ServiceSpec("analytics", "AnalyticsSettings"),
        ServiceSpec("certificate", "CertificateSettings"),
    )
}
