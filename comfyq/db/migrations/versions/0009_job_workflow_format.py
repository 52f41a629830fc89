"""Jobs record the format their workflow came in: "api", or "saved" (the editor's UI format, converted).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('workflow_format', sa.String(length=8), nullable=True))


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('workflow_format')
