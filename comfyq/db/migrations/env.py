"""Alembic environment: migrate the app's own database (Flask-Migrate hands over the app)."""
from __future__ import annotations

from alembic import context
from flask import current_app

db = current_app.extensions["migrate"].db


def run_offline() -> None:
    """Print the migrations' SQL for the app's database without connecting."""
    context.configure(url=db.engine.url.render_as_string(hide_password=False), target_metadata=db.metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on a connection of the app's engine."""
    with db.engine.connect() as connection:
        # Batch mode: SQLite alters a table by copying it, which plain ALTER cannot do there.
        context.configure(connection=connection, target_metadata=db.metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
