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

    # Limits of a CSV import: the file's size and its data rows.
    import_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    import_max_rows: int = Field(default=50_000, ge=1)
    # Rows of an import whose accounts are asked of auth at once; the results are still
    # recorded in file order.
    import_concurrency: int = Field(default=8, ge=1, le=64)
