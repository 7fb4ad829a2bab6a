"""external ids, schedules and step keys

Workshops carry the creating client's key (external_id, with the client's subject in
external_owner, unique among a client's active workshops) and an optional schedule;
steps and substeps carry an optional key.

Revision ID: 85917c062ee5
Revises: b472a758115e
Create Date: 2026-12-03 13:21:07.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sukverse_common.db


revision: str = '85917c062ee5'
down_revision: str | None = 'b472a758115e'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    with op.batch_alter_table('workshops', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('external_owner', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('starts_at', sukverse_common.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ends_at', sukverse_common.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_workshops_external_id', ['external_owner', 'external_id'], unique=False)
        batch_op.create_index('uq_workshops_active_external_id', ['external_owner', 'external_id'], unique=True, postgresql_where=ACTIVE, sqlite_where=ACTIVE)

    with op.batch_alter_table('steps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key', sa.String(length=63), nullable=True))

    with op.batch_alter_table('substeps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key', sa.String(length=63), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later): a batch copy would drop
    # and recreate steps, and with foreign keys on, dropping it deletes every substep.
    op.drop_column('substeps', 'key')
    op.drop_column('steps', 'key')
    op.drop_index('uq_workshops_active_external_id', table_name='workshops', postgresql_where=ACTIVE, sqlite_where=ACTIVE)
    op.drop_index('ix_workshops_external_id', table_name='workshops')
    op.drop_column('workshops', 'ends_at')
    op.drop_column('workshops', 'starts_at')
    op.drop_column('workshops', 'external_owner')
    op.drop_column('workshops', 'external_id')
