"""Webhook secrets in the Standard Webhooks form: whsec_ and standard base64; the old text kept for the old header.

Secrets made so far read ``whsec_`` and 43 base64url characters (32 random
bytes). Each becomes ``whsec_`` and the standard base64 of the same bytes, the
key Standard Webhooks receivers decode; its old text moves to
``legacy_secret``, which keys the deprecated ``Comfyq-Signature`` header, so
receivers that check that header with the secret they stored keep working.
A secret that is not in the old form is left as it is.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""
import base64
import binascii
import re

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

PREFIX = "whsec_"
OLD_FORM = re.compile(r"whsec_[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) made
SETTINGS = sa.table("webhook_settings", sa.column("user_id", sa.String), sa.column("secret", sa.String),
                    sa.column("legacy_secret", sa.String))


def standard_form(old: str) -> str | None:
    """Return the Standard Webhooks text of an old secret (the same 32 bytes), or None if it is not one."""
    if not OLD_FORM.fullmatch(old):
        return None
    try:
        raw = base64.urlsafe_b64decode(old[len(PREFIX):] + "=")
    except (binascii.Error, ValueError):
        return None
    return PREFIX + base64.b64encode(raw).decode()


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('webhook_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('legacy_secret', sa.String(length=64), nullable=True))
    conn = op.get_bind()
    for user_id, old in conn.execute(sa.select(SETTINGS.c.user_id, SETTINGS.c.secret)).all():
        new = standard_form(old)
        if new is not None:
            conn.execute(SETTINGS.update().where(SETTINGS.c.user_id == user_id)
                         .values(secret=new, legacy_secret=old))


def downgrade() -> None:
    """Undo this revision."""
    conn = op.get_bind()
    # Back to the text receivers of the old header stored; secrets made since keep theirs, which signs it too.
    conn.execute(SETTINGS.update().where(SETTINGS.c.legacy_secret.is_not(None))
                 .values(secret=SETTINGS.c.legacy_secret))
    with op.batch_alter_table('webhook_settings', schema=None) as batch_op:
        batch_op.drop_column('legacy_secret')
