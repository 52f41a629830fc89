"""Fair share: each user's weight and when they were last served, and the admission row's serve counter.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('weight', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_served', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('admission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('served', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table('admission', schema=None) as batch_op:
        batch_op.drop_column('served')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_served')
        batch_op.drop_column('weight')
