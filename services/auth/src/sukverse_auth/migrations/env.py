"""Alembic environment of the auth service."""

from sukverse_auth.models import Base
from sukverse_common.db import run_migrations

run_migrations(Base.metadata)
