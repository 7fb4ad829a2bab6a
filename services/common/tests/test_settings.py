"""Settings from SUKVERSE_* variables and *_FILE secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from sukverse_common.settings import ServiceSettings


class Example(ServiceSettings):
    service_name: str = "example"
    password: SecretStr | None = None


def test_environment_and_file_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("SUKVERSE_PORT", "9100")
    monkeypatch.setenv("SUKVERSE_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("SUKVERSE_DATABASE_URL", "postgresql://app:pw@db:5432/app")
    settings = Example()
    assert settings.port == 9100
    assert settings.password is not None and settings.password.get_secret_value() == "from-a-file"
    assert settings.effective_database_url == "postgresql+asyncpg://app:pw@db:5432/app"
    assert "from-a-file" not in repr(settings)


def test_embedded_default_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = Example(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path}/example.db"


def test_bad_values_and_missing_files_are_clear(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUKVERSE_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        Example()
    monkeypatch.delenv("SUKVERSE_PORT")
    monkeypatch.setenv("SUKVERSE_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="password") as refused:
        Example()
    assert "SUKVERSE_PASSWORD_FILE: cannot read" in str(refused.value.__cause__)


def test_kafka_scram_and_tls_become_client_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a Strimzi KafkaUser wires them: SCRAM-SHA-512 over TLS, the password from a file."""
    import ssl

    from sukverse_common.events.kafka import connection_options

    assert connection_options(Example()) == {"security_protocol": "PLAINTEXT"}
    monkeypatch.setenv("SUKVERSE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SUKVERSE_KAFKA_SASL_USERNAME", "sukverse-quiz")
    with pytest.raises(ValidationError, match="needs kafka_sasl_username and kafka_sasl_password"):
        Example()
    monkeypatch.setenv("SUKVERSE_KAFKA_SASL_PASSWORD", "s3cret")
    options = connection_options(Example())
    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "sukverse-quiz",
        "sasl_plain_password": "s3cret",
    }
    monkeypatch.setenv("SUKVERSE_KAFKA_SECURITY_PROTOCOL", "SASL_SCRAM")
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        Example()


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="kafka_ssl_certfile and kafka_ssl_keyfile"):
        Example(kafka_ssl_certfile=tmp_path / "user.crt")
