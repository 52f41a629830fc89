"""Worker entry: the app, the instance binding, and worker signals.

``celery -A comfyq.worker …`` (Flower, inspect) loads ``celery_app`` from here.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.signals import task_failure, worker_process_init, worker_ready, worker_shutting_down

from . import create_app
from .binding import ENV_VAR
from .config import SHARED_QUEUE
from .extensions import db, get_redis
from .heartbeat import Heartbeat
from .recovery import end_orphaned_job

logger = logging.getLogger(__name__)

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
celery_app.conf.include = ["comfyq.tasks"]
_heartbeat: Heartbeat | None = None


def worker_argv(instance: str, loglevel: str = "INFO") -> list[str]:
    """Return the celery worker arguments that bind a worker to ``instance``."""
    queues = ",".join([SHARED_QUEUE, *flask_app.config["INSTANCES"][instance].queues()])
    return ["worker", "-n", f"{instance}@{socket.gethostname()}", "-Q", queues,
            "-P", "prefork", "-c", "1", "--prefetch-multiplier", "1", "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def start_worker(instance: str, loglevel: str = "INFO") -> None:
    """Run a Celery worker that owns ``instance`` (blocks)."""
    if instance not in flask_app.config["INSTANCES"]:
        known = ", ".join(flask_app.config["INSTANCES"]) or "none (set COMFYQ_INSTANCES)"
        raise SystemExit(f"unknown instance {instance!r}; configured: {known}")
    os.environ[ENV_VAR] = instance  # forked children read it to find their instance
    celery_app.worker_main(worker_argv(instance, loglevel))


@worker_ready.connect
def _start_heartbeat(**_: Any) -> None:
    """Start reporting the bound instance once the worker is ready."""
    global _heartbeat
    name = os.environ.get(ENV_VAR)
    if name:
        with flask_app.app_context():
            _heartbeat = Heartbeat(flask_app.config["INSTANCES"][name], get_redis())
            _heartbeat.beat()  # publish the catalogue before the first job is validated
        _heartbeat.start()


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """Drop pooled DB connections inherited from the parent."""
    # A forked child must not share the parent's pooled database connections.
    with flask_app.app_context():
        db.engine.dispose(close=False)


@worker_shutting_down.connect
def _stop_heartbeat(**_: Any) -> None:
    """Stop reporting when the worker shuts down."""
    if _heartbeat is not None:
        _heartbeat.stop()


@task_failure.connect
def _end_orphaned_job(sender: Any = None, exception: BaseException | None = None,
                      args: Any = None, **_: Any) -> None:
    """End a run_job whose task failed without recording how the job ended."""
    # A child lost to a crash is requeued (reject_on_worker_lost); the redelivery resumes it.
    if getattr(sender, "name", None) != "comfyq.run_job" or not args or isinstance(exception, WorkerLostError):
        return
    with flask_app.app_context():
        end_orphaned_job(args[0], exception, flask_app.config["INSTANCES"].get(os.environ.get(ENV_VAR, "")))
