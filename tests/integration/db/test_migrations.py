"""Migrations: they match the models, run both ways (data too), on SQLite and PostgreSQL, once across processes."""
from __future__ import annotations

import base64
import secrets
import subprocess
import sys
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from standardwebhooks import Webhook

from comfyq import create_app
from comfyq.db.extensions import MIGRATIONS, db
from comfyq.db.models import utcnow
from comfyq.db.schema import SchemaError
from comfyq.webhooks import standard


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/comfyq.db"
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as conn:  # a clean schema for each test
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


def test_migrations_match_the_models_and_run_both_ways(database_url: str, tmp_path: Path) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "DATA_DIR": str(tmp_path)})
    with app.app_context():
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
        flask_migrate.downgrade(directory=MIGRATIONS, revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        flask_migrate.upgrade(directory=MIGRATIONS)
        assert {"jobs", "batches", "outputs", "users", "api_keys"} <= set(inspect(db.engine).get_table_names())
        db.engine.dispose()


def test_a_database_made_without_migrations_is_refused_with_a_way_out(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE jobs (id VARCHAR(36) PRIMARY KEY)"))
    with pytest.raises(SchemaError, match="made by a comfyq without migrations; delete it"):
        create_app({"SQLALCHEMY_DATABASE_URI": url})


def test_processes_starting_together_upgrade_once(tmp_path: Path) -> None:
    code = ("import sys; from comfyq import create_app; "
            f"create_app({{'SQLALCHEMY_DATABASE_URI': 'sqlite:///{tmp_path}/race.db'}}); print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(6)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    engine = create_engine(f"sqlite:///{tmp_path}/race.db")
    with engine.connect() as conn:
        head = ScriptDirectory(MIGRATIONS).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]


# Tables as revision 0009 left them, with only the columns these tests fill.
USERS = sa.table("users", sa.column("id", sa.String), sa.column("name", sa.String), sa.column("role", sa.String),
                 sa.column("level", sa.String), sa.column("disabled", sa.Boolean),
                 sa.column("created_at", sa.DateTime(timezone=True)))
SETTINGS = sa.table("webhook_settings", sa.column("user_id", sa.String), sa.column("secret", sa.String),
                    sa.column("events", sa.JSON), sa.column("created_at", sa.DateTime(timezone=True)),
                    sa.column("updated_at", sa.DateTime(timezone=True)))


def secrets_by_user() -> dict[str, tuple[str | None, ...]]:
    """Return each user's webhook secret columns, as the database holds them now."""
    downgraded = "legacy_secret" not in {c["name"] for c in inspect(db.engine).get_columns("webhook_settings")}
    columns = "secret" if downgraded else "secret, legacy_secret"
    with db.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT user_id, {columns} FROM webhook_settings")).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_old_secrets_are_rewritten_to_the_same_key_in_standard_base64_and_back(database_url: str,
                                                                              tmp_path: Path) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "DATA_DIR": str(tmp_path)})
    old = "whsec_" + secrets.token_urlsafe(32)
    odd = "whsec_not-in-the-old-form"
    with app.app_context():
        flask_migrate.downgrade(directory=MIGRATIONS, revision="0009")
        now = utcnow()
        with db.engine.begin() as conn:
            for user_id, secret in (("u-old", old), ("u-odd", odd)):
                conn.execute(sa.insert(USERS).values(id=user_id, name=user_id, role="user", level="expert",
                                                     disabled=False, created_at=now))
                conn.execute(sa.insert(SETTINGS).values(user_id=user_id, secret=secret, events=[], created_at=now,
                                                        updated_at=now))
        flask_migrate.upgrade(directory=MIGRATIONS)
        upgraded = secrets_by_user()
        migrated, legacy = upgraded["u-old"]
        assert legacy == old and upgraded["u-odd"] == (odd, None)
        assert standard.key(migrated) == base64.urlsafe_b64decode(old[len("whsec_"):] + "=")
        body = b'{"id":"d1"}'
        assert Webhook(migrated).verify(body, standard.headers(migrated, "d1", body)) == {"id": "d1"}

        flask_migrate.downgrade(directory=MIGRATIONS, revision="0009")
        assert secrets_by_user() == {"u-old": (old,), "u-odd": (odd,)}
        flask_migrate.upgrade(directory=MIGRATIONS)
        assert secrets_by_user()["u-old"] == (migrated, old)
        db.engine.dispose()
