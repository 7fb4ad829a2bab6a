"""credential status and holder identity

Certificates get their bit in the revocation status lists (status_index, unique) and the
salt of their credential's hashed email (identity_salt); people keep their email.
Certificates already issued get random positions and salts here.

Revision ID: ef96d78a8185
Revises: c1857985d302
Create Date: 2026-12-07 01:40:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'ef96d78a8185'
down_revision: str | None = 'c1857985d302'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As the service allocates them: list k takes certificates k * 65536 up to the next, each
# at a random position of its 131072.
LIST_SIZE = 131_072
LIST_FILL = LIST_SIZE // 2


def upgrade() -> None:
    op.add_column('people', sa.Column('email', sa.String(length=320), nullable=True))
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_index', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('identity_salt', sa.String(length=32), nullable=True))
    bind = op.get_bind()
    ids = [row[0] for row in bind.execute(sa.text('SELECT id FROM certificates ORDER BY issued_at, id'))]
    for start in range(0, len(ids), LIST_FILL):
        chunk = ids[start:start + LIST_FILL]
        first = start // LIST_FILL * LIST_SIZE
        positions = secrets.SystemRandom().sample(range(LIST_SIZE), len(chunk))
        bind.execute(
            sa.text('UPDATE certificates SET status_index = :index, identity_salt = :salt WHERE id = :id'),
            [
                {'index': first + position, 'salt': secrets.token_hex(16), 'id': certificate_id}
                for certificate_id, position in zip(chunk, positions)
            ],
        )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.alter_column('status_index', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('identity_salt', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_certificates_status_index'), ['status_index'])


def downgrade() -> None:
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_certificates_status_index'), type_='unique')
        batch_op.drop_column('identity_salt')
        batch_op.drop_column('status_index')
    op.drop_column('people', 'email')
