"""Settings of the operator and of `sukverse apply`: where the services are, who it is."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

from sukverse_common import machine_clients
from sukverse_common.settings import SukverseSettings, default_data_dir


class OperatorSettings(SukverseSettings):
    """Defaults reach the embedded platform (`make run`) on this machine."""

    auth_url: str = "http://127.0.0.1:8000"
    workshop_url: str = "http://127.0.0.1:8002"
    quiz_url: str = "http://127.0.0.1:8003"
    analytics_url: str = "http://127.0.0.1:8004"
    certificate_url: str = "http://127.0.0.1:8005"
    operator_client_id: str = "operator"
    operator_client_secret: SecretStr | None = None
    data_dir: Path = Field(default_factory=default_data_dir)

    request_timeout_seconds: float = Field(default=30.0, gt=0)
    concurrency: int = Field(default=16, ge=1, le=256)
    # The timer that copies a cohort's figures from analytics into its status.
    sync_interval_seconds: float = Field(default=30.0, ge=1)
    # How often a cohort is reconciled in full although nothing changed (drift repair).
    resync_interval_seconds: float = Field(default=600.0, ge=10)
    retry_delay_seconds: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _embedded_secret(self) -> Self:
        """Without a configured secret, the one `make run` provisioned in the data directory."""
        if self.operator_client_secret is None:
            secret = machine_clients.read(self.data_dir).get(self.operator_client_id)
            if secret:
                object.__setattr__(self, "operator_client_secret", SecretStr(secret))
        return self
