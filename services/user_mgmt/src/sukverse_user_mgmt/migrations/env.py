"""Alembic environment of the user management service."""

from sukverse_common.db import run_migrations
from sukverse_user_mgmt.models import Base

run_migrations(Base.metadata)
