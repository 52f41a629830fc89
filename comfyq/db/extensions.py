"""Shared extensions: the database and the Redis client, bound by ``init_app``."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for comfyq's models."""


# Views present a job right after committing it; reloading it would cost a query.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection: object, _record: object) -> None:
    """Set WAL mode and a busy timeout on every new SQLite connection."""
    # API processes and workers write the same file: WAL lets readers run during
    # a write, and busy_timeout makes writers wait instead of failing.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def init_app(flask_app: Flask) -> None:
    """Bind the database and Redis to ``flask_app``."""
    db.init_app(flask_app)
    flask_app.extensions["redis"] = redis.Redis.from_url(
        flask_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5,
        health_check_interval=30,
        # A restarted Redis drops every connection: reconnect and retry instead of failing the caller.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3), retry_on_error=[redis.ConnectionError])


def init_migrate(flask_app: Flask) -> None:
    """Give ``flask_app`` Flask-Migrate (``flask db …``); alembic is heavy, so only where migrations run."""
    if "migrate" not in flask_app.extensions:
        from flask_migrate import Migrate

        Migrate(flask_app, db, directory=MIGRATIONS)


def get_redis() -> redis.Redis:
    """Return the Redis client of the current app."""
    return current_app.extensions["redis"]
