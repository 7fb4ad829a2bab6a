"""Alembic environment of the analytics service."""

from sukverse_analytics.models import Base
from sukverse_common.db import run_migrations

run_migrations(Base.metadata)
