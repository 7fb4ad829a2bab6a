"""Settings shared by every service, read from SUKVERSE_* variables and *_FILE secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from sukverse_common.db import async_driver_url

ENV_PREFIX = "SUKVERSE_"
CLOCK_SKEW_SECONDS = 30
# The longest an access token may live (auth's `access_token_ttl_seconds` is at most this):
# a revocation matters for this long, and no longer.
MAX_ACCESS_TOKEN_SECONDS = 3600
REVOCATION_SECONDS = MAX_ACCESS_TOKEN_SECONDS + CLOCK_SKEW_SECONDS


def default_data_dir() -> Path:
    """Where the embedded mode keeps its databases and keys."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sukverse"


class FileSecretsSource(EnvSettingsSource):
    """`SUKVERSE_<FIELD>_FILE=/path` sets a field from a file (a mounted Kubernetes Secret)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        env_name = f"{ENV_PREFIX}{field_name.upper()}_FILE"
        path = os.environ.get(env_name)
        if not path:
            return None, field_name, False
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{env_name}: cannot read {path}: {exc.strerror}") from exc
        return value, field_name, self.field_is_complex(field)


class SukverseSettings(BaseSettings):
    """Settings from init arguments, then `SUKVERSE_<FIELD>_FILE` files, then `SUKVERSE_*`
    variables: the services' and the operator's alike."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, FileSecretsSource(settings_cls), env_settings)


class ServiceSettings(SukverseSettings):
    """What every service needs; a service subclasses it to add its own fields."""

    service_name: str = ""
    mode: Literal["embedded", "cluster"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = ""
    database_pool_size: int = Field(default=10, ge=1)
    bus: Literal["memory", "kafka"] = "memory"
    kafka_bootstrap_servers: str = ""
    kafka_topic_prefix: str = ""
    kafka_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # False where the platform manages the topics (Strimzi's KafkaTopics): the service then
    # needs no permission to create them.
    kafka_create_topics: bool = True
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr | None = None
    # PEM files: the CA that signed the brokers' certificates (Strimzi's cluster CA), and a
    # client certificate and key for mutual TLS (a Strimzi KafkaUser with tls authentication).
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    auth_url: str = "http://127.0.0.1:8000"
    token_issuer: str = "sukverse-auth"
    token_audience: str = "sukverse"
    jwks_min_refresh_seconds: float = 10.0
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # Published outbox rows are kept a day for inspection, and at least the hour of them
    # that the embedded bus replays to the token verifiers at start; inbox rows longer than
    # the broker keeps records, so that no redelivered event can find its row gone.
    outbox_retention_hours: float = Field(default=24.0, ge=REVOCATION_SECONDS / 3600)
    inbox_retention_hours: float = Field(default=24.0 * 8, gt=0)
    retention_sweep_seconds: float = Field(default=600.0, gt=0)
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        """Accept the plain `postgresql://` URI that CloudNativePG puts in its Secret."""
        return async_driver_url(url)

    @model_validator(mode="after")
    def _kafka_needs_brokers(self) -> Self:
        if self.bus == "kafka" and not self.kafka_bootstrap_servers:
            raise ValueError(
                "bus 'kafka' needs kafka_bootstrap_servers (host:port, comma-separated)"
            )
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs "
                "kafka_sasl_username and kafka_sasl_password"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("kafka_ssl_certfile and kafka_ssl_keyfile go together")
        return self

    @property
    def embedded_database(self) -> Path | None:
        """The service's SQLite file under the data directory, unless a URL is configured."""
        return None if self.database_url else self.data_dir / f"{self.service_name}.db"

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the service's SQLite file under the data directory."""
        return self.database_url or f"sqlite+aiosqlite:///{self.embedded_database}"
