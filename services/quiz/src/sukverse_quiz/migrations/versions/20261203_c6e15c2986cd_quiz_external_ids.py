"""quiz external ids

Quizzes carry the creating client's key (external_id, with the client's subject in
external_owner), unique per client.

Revision ID: c6e15c2986cd
Revises: aefbe86027c6
Create Date: 2026-12-03 13:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'c6e15c2986cd'
down_revision: str | None = 'aefbe86027c6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns and an index only: SQLite adds them in place (a batch copy of quizzes
    # would, with foreign keys on, delete every question when it drops the old table).
    op.add_column('quizzes', sa.Column('external_id', sa.String(length=320), nullable=True))
    op.add_column('quizzes', sa.Column('external_owner', sa.String(length=200), nullable=True))
    op.create_index('uq_quizzes_external_id', 'quizzes', ['external_owner', 'external_id'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_quizzes_external_id', table_name='quizzes')
    op.drop_column('quizzes', 'external_owner')
    op.drop_column('quizzes', 'external_id')
