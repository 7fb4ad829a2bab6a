"""Settings of the certificate service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sukverse_common.settings import ServiceSettings


class CertificateSettings(ServiceSettings):
    service_name: str = "certificate"
    port: int = 8005

    # Where verifiers reach this service: the QR code and the credentials point here.
    public_base_url: str = Field(default="http://127.0.0.1:8005", pattern=r"^https?://\S+$")
    issuer_name: str = Field(default="Sukverse", min_length=1, max_length=200)
    # The workshop service, asked whether a template's workshop exists when this service
    # has not heard of it yet.
    workshop_url: str = Field(default="http://127.0.0.1:8002", pattern=r"^https?://\S+$")
    # The RS256 key (a private JWK set) that signs Open Badges credentials; by default a
    # key generated into the data directory on first start.
    signing_key_file: Path | None = None
