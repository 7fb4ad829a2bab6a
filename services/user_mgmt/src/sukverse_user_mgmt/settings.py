"""Settings of the user management service."""

from __future__ import annotations

from pydantic import Field, SecretStr

from sukverse_common.settings import ServiceSettings


class UserMgmtSettings(ServiceSettings):
    service_name: str = "user_mgmt"
    port: int = 8001

    # The machine client this service calls the auth service as (its `service` role may
    # assign roles and create accounts); configured in auth's SUKVERSE_SERVICE_CLIENTS.
    auth_client_id: str = "user_mgmt"
    auth_client_secret: SecretStr | None = None
    auth_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
