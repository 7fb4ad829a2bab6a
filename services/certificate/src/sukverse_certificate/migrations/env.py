"""Alembic environment of the certificate service."""

from sukverse_certificate.models import Base
from sukverse_common.db import run_migrations

run_migrations(Base.metadata)
