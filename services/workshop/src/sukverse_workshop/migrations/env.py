"""Alembic environment of the workshop service."""

from sukverse_common.db import run_migrations
from sukverse_workshop.models import Base

run_migrations(Base.metadata)
