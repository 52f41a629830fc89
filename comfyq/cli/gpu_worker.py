"""``comfyq worker NAME``: the GPU worker process, a Celery worker that owns one ComfyUI instance.

Its consumer runs four bootsteps: the lease (comfyq.worker.steps.LeaseStep),
the guard's health watch (``HealthStep``), the intake
(comfyq.worker.intake.IntakeStep) and comfyq's figures in ``inspect stats``
(comfyq.worker.figures.FiguresStep); with ``--comfy-cmd`` it also owns the ComfyUI
process (comfyq.worker.supervisor). The signal handlers below are connected in
this process alone (the webhooks worker never imports this module): they renew
and count each message received, drain the running job on a warm shutdown, and
give a ``run_job`` that failed without an outcome to the recovery policy
(comfyq.jobs.recovery).
"""
from __future__ import annotations

import os
import socket
from typing import Any

from celery.signals import task_failure, task_received, task_revoked, worker_shutting_down

from . import prefork  # noqa: F401 - its signal handlers serve this worker's pool children
from ..app import worker_apps
from ..config.settings import SHARED_QUEUE
from ..jobs import broker, recovery
from ..jobs.machine import JobStatus
from ..worker.binding import ENV_VAR
from ..worker.figures import FiguresStep
from ..worker.intake import IntakeStep
from ..worker.steps import HealthStep, LeaseStep
from ..worker.supervisor import ComfySupervisor

flask_app, celery_app = worker_apps()


def worker_argv(instance: str, loglevel: str = "INFO") -> list[str]:
    """Return the celery worker arguments that bind a worker to ``instance``."""
    queues = ",".join([SHARED_QUEUE, *flask_app.config["INSTANCES"][instance].queues()])
    return ["worker", "-n", f"{instance}@{socket.gethostname()}", "-Q", queues,
            "-P", "prefork", "-c", "1", "--prefetch-multiplier", str(flask_app.config["LOOKAHEAD"]), "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def start(instance: str, loglevel: str = "INFO", supervisor: ComfySupervisor | None = None) -> None:
    """Run a Celery worker that owns ``instance`` (blocks); start its supervised ComfyUI first."""
    if instance not in flask_app.config["INSTANCES"]:
        known = ", ".join(flask_app.config["INSTANCES"]) or "none (set COMFYQ_INSTANCES)"
        raise SystemExit(f"unknown instance {instance!r}; configured: {known}")
    os.environ[ENV_VAR] = instance  # forked children read it to find their instance
    LeaseStep.configure(flask_app.extensions["redis"], presence=instance)
    HealthStep.configure(flask_app, flask_app.config["INSTANCES"][instance], supervisor)
    FiguresStep.configure(flask_app, instance)
    for step in (LeaseStep, IntakeStep, HealthStep, FiguresStep):
        celery_app.steps["consumer"].add(step)
    if supervisor is not None:
        supervisor.start()  # ready before the first job is taken
    try:
        celery_app.worker_main(worker_argv(instance, loglevel))
    finally:
        if supervisor is not None:
            supervisor.stop()


@task_received.connect
def _received(request: Any = None, **_: Any) -> None:
    """Renew every message this worker receives until it is acknowledged, and count it toward a recycle."""
    LeaseStep.hold(request)
    if HealthStep.guard is not None:
        HealthStep.guard.received(request)


@task_revoked.connect
def _revoked(request: Any = None, **_: Any) -> None:
    """Forget a job whose message the worker dropped unrun (its job was cancelled while queued)."""
    if HealthStep.guard is not None and request is not None:
        HealthStep.guard.dropped(request.id)


@worker_shutting_down.connect
def _drain(how: str = "Warm", **_: Any) -> None:
    """On a warm shutdown, let the running job finish up to the drain time, then hand it back."""
    if HealthStep.guard is not None:
        HealthStep.guard.drain(float(flask_app.config["DRAIN_TIMEOUT"]) if how == "Warm" else 0.0)


@task_failure.connect
def _task_failed(sender: Any = None, exception: BaseException | None = None, args: Any = None, **_: Any) -> None:
    """Give a run_job that failed without recording how its job ended to the recovery policy."""
    if getattr(sender, "name", None) != broker.RUN_JOB or not args or exception is None:
        return
    instance = flask_app.config["INSTANCES"].get(os.environ.get(ENV_VAR, ""))
    with flask_app.app_context():
        ended = recovery.end_orphaned(args[0], exception, instance)
    if ended is JobStatus.TIMED_OUT and HealthStep.guard is not None:  # the hard limit killed the child
        HealthStep.guard.after_hard_kill(args[0])
