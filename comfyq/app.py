"""The Flask app factory, and the wiring of what a job's moves and news set off.

Every process that moves jobs (API, workers, control, webhooks, the CLI)
builds its app here, so every one of them connects the same hooks, in the
same order: ``connect_hooks`` is the one place to read what a transition does
besides changing the job's row. ``worker_apps`` builds, once per process, the
pair each worker process runs on: the GPU worker, the webhooks worker, the
control worker and Flower (comfyq.cli), each adding its own bootsteps and signal
handlers. ``celery -A comfyq.app …`` (inspect, Flower) finds that Celery app
here as ``celery``.
"""
from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

from celery import Celery
from celery.exceptions import SecurityWarning
from flask import Flask

from .accounts import credits
from .celery_app import celery_init_app
from .config.settings import Config
from .db import schema
from .db.extensions import init_app
from .events import announcer
from .jobs import machine as jobs, positions, timing
from .metrics import moves as metrics
from .storage.factory import open_stores
from .submission import admission
from .templates.deployment import open_store
from .webhooks import deliveries as webhooks

logger = logging.getLogger(__name__)


def connect_hooks() -> None:
    """Connect what a job's move and news set off, once per process, like Celery's signals."""
    # In a move's transaction, in this order; what each returns runs, in the same order, after the commit.
    jobs.on_moved(credits.refund_on_end)  # an end that earns it is refunded, exactly once
    jobs.on_moved(positions.track)  # queue positions follow every move (after the commit)
    jobs.on_moved(timing.record)  # a success's run time feeds the start estimates (after the commit)
    jobs.on_moved(admission.on_moved)  # an end admits the pending jobs it makes room for, sent after the commit
    jobs.on_moved(announcer.on_moved)  # the one path of job news: the move is logged for SSE after the commit
    jobs.on_moved(metrics.on_moved)  # ends, queue waits and run times are counted in Redis after the commit
    # The announcer's listeners: every move in its transaction, then waits, progress and outputs as logged.
    announcer.on_news(webhooks.on_news)  # an end (or a subscribed start) records its delivery with the move
    # The announcer's run followers: each run's progress as the worker saves it.
    announcer.on_run(webhooks.follow_run)  # progress webhooks, at most each COMFYQ_WEBHOOK_PROGRESS_EVERY


def create_app(config: Mapping[str, Any] | None = None, serve_http: bool = True) -> Flask:
    """Build the app from the environment, ``config`` keys overriding it; with no routes unless ``serve_http``."""
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
    connect_hooks()
    # A broken template stops start-up here, naming its file, never at a user's request.
    flask_app.extensions["templates"] = open_store(flask_app.config)
    if serve_http:  # imported here: a worker process never loads the API's schemas and documentation
        from .api import init_api
        from .dashboard import init_dashboard
        from .editor import init_editor

        init_api(flask_app)
        init_editor(flask_app)  # ComfyUI's editor under /comfy/, after the API: its error handlers apply
        init_dashboard(flask_app)  # the operators' page under /dashboard
    celery_init_app(flask_app)
    with flask_app.app_context():
        schema.upgrade(flask_app)
    return flask_app


@functools.cache
def worker_apps() -> tuple[Flask, Celery]:
    """Return this worker process's app (no routes: it serves no HTTP), built once, and its Celery app."""
    if os.environ.get("COMFYQ_ROOT_NOTED"):  # `comfyq up` said once that it runs as root; each worker would repeat it
        warnings.filterwarnings("ignore", category=SecurityWarning)
    flask_app = create_app(serve_http=False)
    return flask_app, flask_app.extensions["celery"]


def __getattr__(name: str) -> Celery:
    """Give ``celery -A comfyq.app`` the worker processes' Celery app, built on first use."""
    if name == "celery":
        return worker_apps()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
