"""template external ids

Certificate templates carry the creating client's key (external_id, with the client's
subject in external_owner), unique per client.

Revision ID: c1857985d302
Revises: f60aaa61c4de
Create Date: 2026-12-03 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'c1857985d302'
down_revision: str | None = 'f60aaa61c4de'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns and an index only: SQLite adds them in place, where a batch copy would
    # drop the templates table that certificates refer to.
    op.add_column('templates', sa.Column('external_id', sa.String(length=320), nullable=True))
    op.add_column('templates', sa.Column('external_owner', sa.String(length=200), nullable=True))
    op.create_index('uq_templates_external_id', 'templates', ['external_owner', 'external_id'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_templates_external_id', table_name='templates')
    op.drop_column('templates', 'external_owner')
    op.drop_column('templates', 'external_id')
