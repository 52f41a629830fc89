"""Worker entry: the app, the instance binding, and the worker's own threads and signals.

``celery -A comfyq.worker.entry …`` (Flower, inspect) loads ``celery_app`` from here.
The worker's main process runs a ``WorkerGuard`` (comfyq.worker.guard): lease, health
watch, intake and, with ``--comfy-cmd``, the ComfyUI process it owns.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import warnings
from types import FrameType
from typing import Any

from celery.exceptions import SecurityWarning
from celery.signals import (task_failure, task_postrun, task_prerun, task_received, worker_process_init,
                            worker_ready, worker_shutdown, worker_shutting_down)

from .. import create_app
from . import intake
from .binding import ENV_VAR
from ..config.settings import CONTROL_QUEUE, SHARED_QUEUE
from ..db.extensions import db
from ..jobs import broker, recovery
from ..jobs.machine import JobStatus
from .guard import WorkerGuard
from .supervisor import ComfySupervisor

logger = logging.getLogger(__name__)

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
celery_app.conf.include = ["comfyq.worker.tasks"]
celery_app.steps["consumer"].add(intake.IntakeStep)
_guard: WorkerGuard | None = None
_supervisor: ComfySupervisor | None = None
_in_task = False  # in a pool child: whether it is running a task now
if os.environ.get("COMFYQ_ROOT_NOTED"):  # `comfyq up` said once that it runs as root; each worker would repeat it
    warnings.filterwarnings("ignore", category=SecurityWarning)


def worker_argv(instance: str, loglevel: str = "INFO") -> list[str]:
    """Return the celery worker arguments that bind a worker to ``instance``."""
    queues = ",".join([SHARED_QUEUE, *flask_app.config["INSTANCES"][instance].queues()])
    return ["worker", "-n", f"{instance}@{socket.gethostname()}", "-Q", queues,
            "-P", "prefork", "-c", "1", "--prefetch-multiplier", "1", "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def control_argv(loglevel: str = "INFO", schedule: str | None = None) -> list[str]:
    """Return the arguments of the control worker: the control queue, with Celery beat embedded."""
    schedule = schedule or os.path.join(flask_app.config["DATA_DIR"], "celerybeat-schedule")
    os.makedirs(os.path.dirname(schedule), exist_ok=True)
    return ["worker", "-n", f"control@{socket.gethostname()}", "-Q", CONTROL_QUEUE, "-B", "-s", schedule,
            "-P", "prefork", "-c", "1", "--prefetch-multiplier", "1", "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def start_worker(instance: str, loglevel: str = "INFO", supervisor: ComfySupervisor | None = None) -> None:
    """Run a Celery worker that owns ``instance`` (blocks); start its supervised ComfyUI first."""
    global _supervisor
    if instance not in flask_app.config["INSTANCES"]:
        known = ", ".join(flask_app.config["INSTANCES"]) or "none (set COMFYQ_INSTANCES)"
        raise SystemExit(f"unknown instance {instance!r}; configured: {known}")
    os.environ[ENV_VAR] = instance  # forked children read it to find their instance
    if supervisor is not None:
        supervisor.start()  # ready before the first job is taken
        _supervisor = supervisor
    try:
        celery_app.worker_main(worker_argv(instance, loglevel))
    finally:
        if supervisor is not None:
            supervisor.stop()


def start_control(loglevel: str = "INFO") -> None:
    """Run the control worker with beat: the reconciler's schedule and its passes (blocks)."""
    celery_app.worker_main(control_argv(loglevel))


@worker_ready.connect
def _start_guard(sender: Any = None, **_: Any) -> None:
    """Start the lease, the health watch and the intake control once the worker is ready."""
    global _guard
    name = os.environ.get(ENV_VAR)
    if not name:
        return  # the control worker owns no instance
    with flask_app.app_context():
        _guard = WorkerGuard(flask_app, celery_app, flask_app.config["INSTANCES"][name], sender.hostname,
                             _supervisor)
    _guard.start()


@task_received.connect
def _hold_message(request: Any = None, **_: Any) -> None:
    """Renew every message this worker receives until it is acknowledged."""
    if _guard is not None and request is not None:
        _guard.received(request)


@worker_process_init.connect
def _init_child(**_: Any) -> None:
    """Drop pooled DB connections inherited from the parent."""
    # A forked child must not share the parent's pooled database connections.
    with flask_app.app_context():
        db.engine.dispose(close=False)


def _child_sigterm(signum: int, _frame: FrameType | None) -> None:
    """Ignore a SIGTERM sent to the whole process group while a job runs; the parent drains it."""
    if _in_task:
        logger.warning("SIGTERM during a job: left to the worker's drain (COMFYQ_DRAIN_TIMEOUT)")
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@task_prerun.connect
def _task_started(**_: Any) -> None:
    """Note in the child that a task runs; leave a SIGTERM to the parent meanwhile."""
    global _in_task
    if threading.current_thread() is not threading.main_thread():
        return  # a threads-pool worker (webhooks): no child process of its own to protect
    _in_task = True
    # billiard resets signal handlers after worker_process_init, so this is the first chance.
    signal.signal(signal.SIGTERM, _child_sigterm)


@task_postrun.connect
def _task_ended(**_: Any) -> None:
    """Note in the child that no task runs."""
    global _in_task
    _in_task = False


@worker_shutting_down.connect
def _drain(how: str = "Warm", **_: Any) -> None:
    """On a warm shutdown, let the running job finish up to the drain time, then hand it back."""
    if _guard is not None:
        _guard.drain(float(flask_app.config["DRAIN_TIMEOUT"]) if how == "Warm" else 0.0)


@worker_shutdown.connect
def _stop_guard(**_: Any) -> None:
    """Stop the worker's threads and say it is gone, so others may take its jobs at once."""
    if _guard is not None:
        _guard.stop()


@task_failure.connect
def _task_failed(sender: Any = None, exception: BaseException | None = None, args: Any = None, **_: Any) -> None:
    """Give a run_job that failed without recording how its job ended to the recovery policy."""
    if getattr(sender, "name", None) != broker.RUN_JOB or not args or exception is None:
        return
    instance = flask_app.config["INSTANCES"].get(os.environ.get(ENV_VAR, ""))
    with flask_app.app_context():
        ended = recovery.end_orphaned(args[0], exception, instance)
    if ended is JobStatus.TIMED_OUT and _guard is not None:  # the hard limit killed the child
        _guard.after_hard_kill(args[0])
