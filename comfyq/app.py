"""The Flask app factory."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from .api import init_api
from .celery_app import celery_init_app
from .config.settings import Config
from .submission import admission
from .events import announcer
from .jobs import machine as jobs, positions
from .db import schema
from .webhooks import deliveries as webhooks
from .db.extensions import init_app
from .storage.factory import open_stores
from .templates.deployment import open_store

logger = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with ``config`` keys overriding it."""
    flask_app = Flask("comfyq")
    flask_app.config.from_mapping(Config().as_dict())
    flask_app.config.from_mapping(config or {})
    flask_app.json.sort_keys = False
    if flask_app.config["STORAGE"] == "local":
        for folder in ("OUTPUT_DIR", "INPUT_DIR"):
            Path(flask_app.config[folder]).mkdir(parents=True, exist_ok=True)
    flask_app.extensions["stores"] = open_stores(flask_app.config)  # outputs, input images
    if flask_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(flask_app.config["SQLALCHEMY_DATABASE_URI"][len("sqlite:///"):]).parent.mkdir(
            parents=True, exist_ok=True)
    init_app(flask_app)
    # Every move of a job keeps queue positions current, and an end admits the next pending job.
    jobs.on_moved(positions.track)
    jobs.on_moved(admission.on_moved)
    # Every move is told by the announcer, the one path of job news, and logged for SSE once it commits.
    jobs.on_moved(announcer.on_moved)
    # Webhooks hear the announcer: an end (or a subscribed start) records its delivery in the move's commit;
    announcer.on_news(webhooks.on_news)
    # a run subscribed to progress sends it at most each COMFYQ_WEBHOOK_PROGRESS_EVERY.
    announcer.on_run(webhooks.follow_run)
    # A broken template stops start-up here, naming its file, never at a user's request.
    flask_app.extensions["templates"] = open_store(flask_app.config)
    init_api(flask_app)
    celery_init_app(flask_app)
    with flask_app.app_context():
        schema.upgrade(flask_app)
    return flask_app
