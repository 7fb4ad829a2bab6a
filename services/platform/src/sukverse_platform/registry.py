"""The services the platform knows, each with its settings and application factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from sukverse_analytics.app import MIGRATIONS as ANALYTICS_MIGRATIONS
from sukverse_analytics.app import create_app as create_analytics_app
from sukverse_analytics.settings import AnalyticsSettings
from sukverse_auth.app import MIGRATIONS as AUTH_MIGRATIONS
from sukverse_auth.app import create_app as create_auth_app
from sukverse_auth.settings import AuthSettings
from sukverse_certificate.app import MIGRATIONS as CERTIFICATE_MIGRATIONS
from sukverse_certificate.app import create_app as create_certificate_app
from sukverse_certificate.settings import CertificateSettings
from sukverse_common.events.bus import Bus
from sukverse_common.settings import ServiceSettings
from sukverse_quiz.app import MIGRATIONS as QUIZ_MIGRATIONS
from sukverse_quiz.app import create_app as create_quiz_app
from sukverse_quiz.settings import QuizSettings
from sukverse_user_mgmt.app import MIGRATIONS as USER_MGMT_MIGRATIONS
from sukverse_user_mgmt.app import create_app as create_user_mgmt_app
from sukverse_user_mgmt.settings import UserMgmtSettings
from sukverse_workshop.app import MIGRATIONS as WORKSHOP_MIGRATIONS
from sukverse_workshop.app import create_app as create_workshop_app
from sukverse_workshop.settings import WorkshopSettings

DEFAULT_PORT_BASE = 8000


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    settings: type[ServiceSettings]
    create_app: Callable[..., web.Application]
    migrations: str

    @property
    def default_port(self) -> int:
        port: int = self.settings.model_fields["port"].default
        return port

    def app(self, settings: ServiceSettings, *, bus: Bus | None) -> web.Application:
        return self.create_app(settings, bus=bus)


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("auth", AuthSettings, create_auth_app, AUTH_MIGRATIONS),
        ServiceSpec("user_mgmt", UserMgmtSettings, create_user_mgmt_app, USER_MGMT_MIGRATIONS),
        ServiceSpec("workshop", WorkshopSettings, create_workshop_app, WORKSHOP_MIGRATIONS),
        ServiceSpec("quiz", QuizSettings, create_quiz_app, QUIZ_MIGRATIONS),
        ServiceSpec("analytics", AnalyticsSettings, create_analytics_app, ANALYTICS_MIGRATIONS),
        ServiceSpec(
            "certificate", CertificateSettings, create_certificate_app, CERTIFICATE_MIGRATIONS
        ),
    )
}
