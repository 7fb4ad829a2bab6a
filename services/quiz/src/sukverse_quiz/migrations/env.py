"""Alembic environment of the quiz service."""

from sukverse_common.db import run_migrations
from sukverse_quiz.models import Base

run_migrations(Base.metadata)
