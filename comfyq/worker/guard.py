"""What a GPU worker's main process does beside Celery: health watch, intake, restarts and drain.

One ``WorkerGuard`` per GPU worker, started and stopped by its consumer bootstep
(comfyq.worker.steps.HealthStep). It watches the instance (comfyq.worker.health),
opens the worker's intake only while the instance is healthy and no operator holds
it closed (comfyq.worker.intake; the dashboard's "close intake"),
restarts a supervised ComfyUI that is stuck, and on a warm shutdown hands a job
that outlives the drain time back to the queue, giving up the worker's lease
(comfyq.fleet.lease, run by ``LeaseStep``) so another worker may take it over.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import redis
from celery import Celery
from celery.worker import state as worker_state
from flask import Flask

from ..fleet import instances
from . import claim, handback, intake, lookahead
from ..config.settings import Instance
from ..db.extensions import get_redis
from .health import HealthMonitor
from ..fleet.lease import Lease
from ..jobs import broker
from ..jobs.broker import RUN_JOB
from .supervisor import ComfySupervisor

logger = logging.getLogger(__name__)


class WorkerGuard:
    """Keep one worker honest about its instance and its messages."""

    def __init__(self, flask_app: Flask, celery_app: Celery, instance: Instance, hostname: str, lease: Lease,
                 supervisor: ComfySupervisor | None = None) -> None:
        config = flask_app.config
        self.celery, self.instance, self.hostname, self.supervisor = celery_app, instance, hostname, supervisor
        self.redis = get_redis()
        self.lease = lease
        self.depth = int(config["LOOKAHEAD"])
        self.suspected: set[str] = set()  # listed jobs found not held at the last check
        self.handback = handback.Watch(handback.HandBack(instance, config["INSTANCES"], self.redis),
                                       lambda request: broker.send_again(celery_app, request))
        self.health = HealthMonitor(instance, self.redis, interval=float(config["HEALTH_INTERVAL"]),
                                    failures=int(config["HEALTH_FAILURES"]), on_state=self._on_state,
                                    on_stuck=self._restart_stuck if supervisor else None,
                                    stuck_grace=float(config["INTERRUPT_GRACE"]))
        self.pid = os.getpid()
        self.draining = threading.Event()
        self.restarting = threading.Lock()
        if supervisor is not None:
            supervisor.on_down, supervisor.on_up, supervisor.is_idle = self._on_down, self._on_up, self._idle

    def start(self) -> None:
        """Check and publish the catalogue at once (jobs are validated against it), then keep at it."""
        try:
            lookahead.reset(self.redis, self.instance.name)  # what a killed worker held went back to the queue
            self.health.publish_catalogue()
            self.health.check()
        except Exception:  # noqa: BLE001 - the watch below must start whatever the first round met
            logger.exception("first check of %s failed; the watch goes on", self.instance.name)
        self.health.start()
        if self.supervisor is not None:
            self.supervisor.watch()

    def received(self, request: Any = None) -> None:
        """Count a job the worker just received toward a supervised recycle; list it for its lookahead."""
        if self.supervisor is not None:
            self.supervisor.job_done()
        if request is not None and lookahead.worth_noting(self.depth, getattr(request, "name", None), RUN_JOB,
                                                          getattr(request, "eta", None)):
            try:
                lookahead.note(self.redis, self.instance.name, request.id)
            except redis.RedisError as exc:  # not listed: its prompt is placed when its own run begins
                logger.warning("could not list job %s for lookahead: %s", request.id, exc)
                return
            if _held() - {request.id}:  # it would wait here: an instance going idle may take it instead
                self.handback.watch(request, (request.delivery_info or {}).get("routing_key", ""))

    def dropped(self, job_id: str) -> None:
        """Take a job whose message the worker dropped unrun off its lookahead list: peers would think it busy."""
        if self.depth > 1:
            try:
                lookahead.started(self.redis, self.instance.name, job_id)
            except redis.RedisError as exc:  # the next health check prunes it
                logger.warning("could not take job %s off the lookahead list: %s", job_id, exc)

    def _on_state(self, state: str) -> None:
        """Take shared work only while the instance is healthy and no operator closed the intake."""
        try:
            held = instances.intake_held(self.redis, self.instance.name)
        except redis.RedisError:  # no word from Redis: keep the intake as it is
            held = None if intake.is_open() else "unknown"
        want = state == instances.HEALTHY and not self.draining.is_set() and held is None
        is_open = intake.is_open()
        if is_open is not None and is_open != want:
            intake.set_open(self.celery, self.hostname, self.instance, want)
            is_open = want
        status = {"state": state, "intake": "open" if is_open else "closed"}
        if self.supervisor is not None:
            status.update(comfyui_pid=self.supervisor.pid or "", comfyui_restarts=self.supervisor.restarts)
        self.health.extra = {k: v for k, v in status.items() if k != "state"}
        intake.IntakeStep.status = {**status, "instance": self.instance.name, "checked_at": time.time()}
        self._prune_held()

    def _prune_held(self) -> None:
        """Keep the lookahead list to the jobs this worker still holds: peers judge whether it idles by it."""
        if self.depth < 2:
            return
        try:
            self.suspected = lookahead.prune(self.redis, self.instance.name, _held(), self.suspected)
        except (RuntimeError, redis.RedisError) as exc:  # the sets changed while read, or no Redis: next check
            logger.debug("lookahead list of %s not pruned: %s", self.instance.name, exc)

    def _restart_stuck(self, prompt: str) -> None:
        """Restart the supervised ComfyUI that ignores an interrupt, in the background (once at a time)."""
        if self.supervisor is not None and self.restarting.acquire(blocking=False):
            def restart() -> None:
                try:
                    self.supervisor.restart(f"prompt {prompt} ignored its interrupt")  # type: ignore[union-attr]
                    instances.clear_stuck(self.redis, self.instance.name)
                finally:
                    self.restarting.release()
            threading.Thread(target=restart, name=f"restart-{self.instance.name}", daemon=True).start()

    def _on_down(self, reason: str) -> None:
        """Say the supervised ComfyUI is being restarted, and stop taking shared work meanwhile."""
        with self.health.lock:
            self.health.override = instances.RESTARTING
            self.health.set_state(instances.RESTARTING, {"reachable": False, "websocket": False, "error": reason})

    def _on_up(self) -> None:
        """Go back to judging the instance by what it answers."""
        self.health.override = None
        self.health.check()

    def _idle(self) -> bool:
        """Tell whether the worker holds no job at all."""
        return not worker_state.active_requests and not worker_state.reserved_requests

    def after_hard_kill(self, job_id: str) -> None:
        """After the hard limit killed a child: close intake until the health watch sees the prompt gone."""
        if os.getpid() != self.pid:
            return  # a pool child forked after start has a copy of this guard; only the worker acts
        instances.mark_stuck(self.redis, self.instance.name, job_id)
        intake.set_open(self.celery, self.hostname, self.instance, False)

    def drain(self, timeout: float) -> None:
        """Stop taking work; after ``timeout`` s, kill the child still running a job so its message goes back."""
        self.draining.set()
        try:
            lookahead.reset(self.redis, self.instance.name)  # place nothing more: the jobs held go back unrun
        except redis.RedisError:
            pass

        def wait_then_hand_back() -> None:
            deadline = time.monotonic() + timeout
            try:  # the jobs held go back to the queue unrun: their prompts must not run here unfollowed
                claim.take_back_all(self.redis, self.instance)
            except Exception:  # noqa: BLE001 - one the instance keeps is followed by whichever run takes its job
                logger.exception("could not withdraw the prompts placed on %s", self.instance.name)
            while worker_state.active_requests and time.monotonic() < deadline:
                time.sleep(0.1)
            if worker_state.active_requests:
                self.lease.stop(release=True)  # gone for good: the next worker may take the job over at once
            for request in list(worker_state.active_requests):
                if request.worker_pid:
                    logger.warning("drain time over: handing job %s back to the queue", request.id)
                    try:
                        os.kill(request.worker_pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        threading.Thread(target=wait_then_hand_back, name="drain", daemon=True).start()

    def stop(self) -> None:
        """Stop the health watch and withdraw the instance's published state (the lease step releases the lease)."""
        self.health.stop()
        try:
            self.redis.delete(instances.STATUS_KEY.format(self.instance.name))
        except redis.RedisError:
            pass


def _held() -> set[str]:
    """Return the ids of the messages this worker holds: running or reserved."""
    return {request.id for request in (*worker_state.active_requests, *worker_state.reserved_requests)}
