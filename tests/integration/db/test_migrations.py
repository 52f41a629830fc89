"""Migrations: they match the models, run both ways, on SQLite and PostgreSQL, once across processes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from comfyq import create_app
from comfyq.db.extensions import MIGRATIONS, db
from comfyq.db.schema import SchemaError


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
