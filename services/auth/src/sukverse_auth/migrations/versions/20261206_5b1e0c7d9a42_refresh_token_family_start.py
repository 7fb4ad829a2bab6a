"""refresh tokens carry their family's start

Revision ID: 5b1e0c7d9a42
Revises: 0c2ca3d85a21
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sukverse_common.db


revision: str = '5b1e0c7d9a42'
down_revision: str | None = '0c2ca3d85a21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('family_started_at', sukverse_common.db.UtcDateTime(timezone=True), nullable=True)
        )
    # A family started with its first token: every token is kept, used or not.
    op.execute(
        'UPDATE refresh_tokens SET family_started_at = (SELECT min(first.issued_at) '
        'FROM refresh_tokens AS first WHERE first.family_id = refresh_tokens.family_id)'
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.alter_column(
            'family_started_at',
            existing_type=sukverse_common.db.UtcDateTime(timezone=True),
            nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_column('family_started_at')
