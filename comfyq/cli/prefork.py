"""What the children of a prefork worker need: the GPU workers' (the control and webhooks workers run threads).

Importing this module connects its signal handlers in the worker's main process,
before it forks; what that process made until its pool starts is frozen
(``gc.freeze``), so the children's collections leave those pages shared. A
forked child drops the pooled database connections it inherited; while it runs
a task, it leaves a SIGTERM sent to the whole process group to its parent,
which lets the task finish (a GPU worker drains it, see comfyq.cli.gpu_worker).
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

from ..app import worker_apps
from ..db.extensions import db

logger = logging.getLogger(__name__)
_in_task = False  # in a pool child: whether it is running a task now


@worker_init.connect
def _freeze(**_: Any) -> None:
    """Move every object made so far out of the collector's reach, so a forked child's collections leave them shared."""
    gc.collect()
    gc.freeze()  # otherwise each collection in the child writes to their headers, copying their pages


@worker_process_init.connect
def _init_child(**_: Any) -> None:
    """Drop pooled DB connections inherited from the parent."""
    flask_app = worker_apps()[0]
    with flask_app.app_context():
        db.engine.dispose(close=False)


def _child_sigterm(signum: int, _frame: FrameType | None) -> None:
    """Ignore a SIGTERM sent to the whole process group while a task runs; the parent drains it."""
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
        return  # a task on a thread: no child process of its own to protect
    _in_task = True
    # billiard resets signal handlers after worker_process_init, so this is the first chance.
    signal.signal(signal.SIGTERM, _child_sigterm)


@task_postrun.connect
def _task_ended(**_: Any) -> None:
    """Note in the child that no task runs."""
    global _in_task
    _in_task = False
