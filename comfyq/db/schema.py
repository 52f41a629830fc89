"""Bring the database to the newest migration, once, however many processes start together."""
from __future__ import annotations

import fcntl
import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from flask import Flask
from sqlalchemy import inspect, text

from .extensions import MIGRATIONS, db, init_migrate

logger = logging.getLogger(__name__)
ADVISORY_LOCK = 0x636F6D66  # "comf": PostgreSQL advisory lock id of schema upgrades


class SchemaError(RuntimeError):
    """The database cannot be brought to the current schema."""


@contextmanager
def _exclusive(flask_app: Flask) -> Iterator[None]:
    """Hold a lock that only one process at a time gets: a lock file for SQLite, an advisory lock else."""
    uri = flask_app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        with open(f"{uri[len('sqlite:///'):]}.migrate.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK})
    else:
        yield  # an in-memory or other database: one process only


def head() -> str | None:
    """Return the newest migration's revision, read from the scripts' text (alembic is not loaded for it)."""
    named = {}
    for script in Path(MIGRATIONS, "versions").glob("*.py"):
        source = script.read_text()
        found = [re.search(rf"^{key}\s*=\s*['\"]?([^'\"\s]+)", source, re.M) for key in ("revision", "down_revision")]
        if found[0]:
            named[found[0].group(1)] = found[1].group(1) if found[1] else "None"
    heads = set(named) - set(named.values())
    return heads.pop() if len(heads) == 1 else None


def current(tables: set[str]) -> str | None:
    """Return the revision the database is at, None when it has none."""
    if "alembic_version" not in tables:
        return None
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(flask_app: Flask) -> None:
    """Apply every migration the database lacks (call inside an app context)."""
    with _exclusive(flask_app):
        tables = set(inspect(db.engine).get_table_names())
        if "jobs" in tables and "alembic_version" not in tables:
            raise SchemaError(
                f"the database at {db.engine.url!r} was made by a comfyq without migrations; "
                "delete it (a development database) or bring it to the first migration by hand "
                "and run `flask --app comfyq.wsgi db stamp 0001`")
        newest = head()
        if newest is not None and current(tables) == newest:
            return  # the usual start: up to date, no need to load alembic
        import flask_migrate

        init_migrate(flask_app)
        flask_migrate.upgrade(directory=MIGRATIONS)
