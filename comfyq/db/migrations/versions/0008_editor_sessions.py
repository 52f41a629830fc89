"""Editor sessions (ComfyUI's editor under /comfy/) and the files the editor stores per student.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('editor_sessions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('ticket_sha256', sa.String(length=64), nullable=False),
    sa.Column('ticket_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=True),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_sha256'),
    sa.UniqueConstraint('token_sha256')
    )
    with op.batch_alter_table('editor_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_editor_sessions_user_id'), ['user_id'], unique=False)
    op.create_table('editor_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'path', name='uq_editor_files_user_path')
    )
    with op.batch_alter_table('editor_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_editor_files_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table('editor_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_editor_files_user_id'))
    op.drop_table('editor_files')
    with op.batch_alter_table('editor_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_editor_sessions_user_id'))
    op.drop_table('editor_sessions')
