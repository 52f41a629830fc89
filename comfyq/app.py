"""The Flask app factory."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from flask import Flask
from sqlalchemy.exc import OperationalError

from .api import init_api
from .celery_app import celery_init_app
from .config import Config
from .extensions import db, init_app
from .templates.deployment import open_store

logger = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with ``config`` keys overriding it."""
    flask_app = Flask("comfyq")
    flask_app.config.from_mapping(Config().as_dict())
    flask_app.config.from_mapping(config or {})
    flask_app.json.sort_keys = False
    for folder in ("OUTPUT_DIR", "INPUT_DIR"):
        Path(flask_app.config[folder]).mkdir(parents=True, exist_ok=True)
    if flask_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(flask_app.config["SQLALCHEMY_DATABASE_URI"][len("sqlite:///"):]).parent.mkdir(
            parents=True, exist_ok=True)
    init_app(flask_app)
    # A broken template stops start-up here, naming its file, never at a user's request.
    flask_app.extensions["templates"] = open_store(flask_app.config)
    init_api(flask_app)
    celery_init_app(flask_app)
    with flask_app.app_context():
        _create_tables()
    return flask_app


def _create_tables() -> None:
    # Several processes start at once against one SQLite file; a lost race on
    # CREATE TABLE means another process made it.
    for attempt in range(3):
        try:
            db.create_all()
            return
        except OperationalError as exc:
            logger.info("create_all attempt %d: %s", attempt + 1, exc)
    db.create_all()
