"""A ComfyUI process owned by its worker: started, watched, restarted, recycled and freed."""
from __future__ import annotations

import logging
import shlex
import subprocess
import threading
import time
from typing import Any, Callable

import requests

from ..processes.proctree import log_tail, terminate_tree, tree_rss
from ..processes.restarts import backoff

logger = logging.getLogger(__name__)
MB = 1024 * 1024
RESTART_GRACE, BACKOFF_FIRST, BACKOFF_MAX = 5.0, 1.0, 30.0


class SupervisorError(RuntimeError):
    """The supervised process could not be started or made ready."""


class ComfySupervisor:
    """Run one ComfyUI command, keep it up, and recycle or free it while its worker is idle."""

    def __init__(self, command: str, url: str, *, name: str = "comfyui", ready_timeout: float = 300.0,
                 max_jobs: int = 0, max_rss_bytes: int = 0, free_after_idle: float = 0.0,
                 is_idle: Callable[[], bool] = lambda: True,
                 on_down: Callable[[str], None] | None = None, on_up: Callable[[], None] | None = None,
                 log_path: str | None = None, check_interval: float = 0.5) -> None:
        self.command = command
        self.url = url.rstrip("/")
        self.name = name
        self.ready_timeout = ready_timeout
        self.max_jobs = max_jobs
        self.max_rss_bytes = max_rss_bytes
        self.free_after_idle = free_after_idle
        self.is_idle = is_idle
        self.on_down = on_down
        self.on_up = on_up
        self.log_path = log_path
        self.check_interval = check_interval
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()  # held through every stop-and-start
        self._jobs_lock = threading.Lock()
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._jobs = 0
        self._launches = 0
        self._up = False  # pairs on_down with on_up across failed restarts
        self._idle_since: float | None = None
        self._freed = False

    @property
    def pid(self) -> int | None:
        """Return the process id while the process runs, else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def restarts(self) -> int:
        """Return how many times the process was started again after its first start."""
        return max(self._launches - 1, 0)

    def rss_bytes(self) -> int:
        """Return the resident memory of the process and all its descendants."""
        pid = self.pid
        return 0 if pid is None else tree_rss(pid)

    def start(self) -> None:
        """Launch the command and block until it answers /system_stats; raise SupervisorError if not."""
        with self._lock:
            self._stopping.clear()
            if self.pid is not None:
                return
            self._launch()
            self._up = True

    def watch(self) -> None:
        """Start the monitor thread (once)."""
        if self._monitor is None or not self._monitor.is_alive():
            self._monitor = threading.Thread(target=self._watch, name=f"supervisor-{self.name}", daemon=True)
            self._monitor.start()

    def job_done(self) -> None:
        """Count one job toward max_jobs (the worker counts each job as it arrives)."""
        with self._jobs_lock:
            self._jobs += 1

    def restart(self, reason: str) -> None:
        """Stop and start the process again; raise SupervisorError if it does not come back."""
        with self._lock:
            logger.warning("restarting %s: %s", self.name, reason)
            self._announce_down(reason)
            self._terminate(RESTART_GRACE)
            self._launch()
            self._up = True
        self._call(self.on_up)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the monitor and the process tree (SIGKILL after timeout); safe to call twice."""
        self._stopping.set()  # first, so a start waiting for readiness gives up
        monitor = self._monitor
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join(timeout + RESTART_GRACE + 5)
        with self._lock:
            self._terminate(timeout)
            self._up = False

    def _launch(self) -> None:
        """Start the command and wait until it is ready; kill it on failure (lock held)."""
        if self._ready():
            # Say, a ComfyUI left running by a worker that was killed: ours would fail to bind and
            # the other would pass for ours, so neither could be restarted.
            raise SupervisorError(f"something already answers at {self.url}; stop it before starting {self.name}")
        log = open(self.log_path, "ab") if self.log_path else None
        try:
            self._proc = subprocess.Popen(shlex.split(self.command), stdout=log,
                                          stderr=subprocess.STDOUT if log else None, start_new_session=True)
        except OSError as exc:
            raise SupervisorError(f"{self.name} could not be started: {exc}") from exc
        finally:
            if log is not None:
                log.close()
        proc, started = self._proc, time.monotonic()
        logger.info("started %s (pid %d): %s", self.name, proc.pid, self.command)
        while not self._ready() or proc.poll() is not None:
            code = proc.poll()
            if code is not None or self._stopping.is_set() or time.monotonic() - started > self.ready_timeout:
                self._terminate(0)
                why = (f"exited with {code} before it was ready" if code is not None else
                       "was stopped before it was ready" if self._stopping.is_set() else
                       f"was not ready within {self.ready_timeout:g}s")
                raise SupervisorError(f"{self.name} {why}{self._log_tail()}")
            time.sleep(0.1)
        self._launches += 1
        with self._jobs_lock:
            self._jobs = 0
        logger.info("%s is ready (pid %d) after %.1fs", self.name, proc.pid, time.monotonic() - started)

    def _ready(self) -> bool:
        """Tell whether the server answers /system_stats with 200."""
        try:
            return requests.get(f"{self.url}/system_stats", timeout=(1, 2)).status_code == 200
        except requests.RequestException:
            return False

    def _terminate(self, grace: float) -> None:
        """Stop the process tree, if any, and forget it (lock held)."""
        if self._proc is not None:
            code = terminate_tree(self._proc, grace)
            logger.info("%s (pid %d) ended with %s", self.name, self._proc.pid, code)
            self._proc = None

    def _log_tail(self) -> str:
        """Return the end of the log, worded for an error message."""
        tail = log_tail(self.log_path) if self.log_path else ""
        return f"; log {self.log_path} ends:\n{tail}" if tail else ""

    def _call(self, callback: Callable[..., Any] | None, *args: Any, default: Any = None) -> Any:
        """Run a callback; log and swallow what it raises."""
        if callback is None:
            return default
        try:
            return callback(*args)
        except Exception:
            logger.exception("%s: callback %r failed", self.name, callback)
            return default

    def _announce_down(self, reason: str) -> None:
        """Call on_down once per outage."""
        if self._up:
            self._up = False
            self._call(self.on_down, reason)

    def _watch(self) -> None:
        """Check every check_interval seconds until stopped; nothing that fails ends the loop."""
        while not self._stopping.wait(self.check_interval):
            try:
                self._check()
            except Exception:
                logger.exception("%s: supervisor check failed", self.name)

    def _check(self) -> None:
        """Bring a dead process back; while idle, recycle it or free its memory."""
        with self._lock:
            proc = self._proc
            code = None if proc is None else proc.poll()
        if proc is None or code is not None:
            self._revive(f"exited with {code}" if proc is not None else "not running")
            return
        if not self._call(self.is_idle, default=False):
            self._idle_since, self._freed = None, False
            return
        now = time.monotonic()
        self._idle_since = self._idle_since if self._idle_since is not None else now
        with self._jobs_lock:
            jobs = self._jobs
        if self.max_jobs and jobs >= self.max_jobs:
            self.restart(f"recycled after {jobs} jobs")
        elif self.max_rss_bytes and (rss := self.rss_bytes()) > self.max_rss_bytes:
            self.restart(f"recycled: RSS {rss / MB:.0f} MB over {self.max_rss_bytes / MB:.0f} MB")
        elif 0 < self.free_after_idle <= now - self._idle_since and not self._freed:
            self._freed = True
            self._free()

    def _revive(self, reason: str) -> None:
        """Start the process again, backing off between failures, until it is up or we stop."""
        logger.warning("%s %s; starting it again", self.name, reason)
        with self._lock:
            self._announce_down(reason)
        attempt = 0
        while not self._stopping.is_set():
            try:
                with self._lock:
                    if self._stopping.is_set() or self.pid is not None:
                        return  # stopped, or a restart() beat us to it
                    self._terminate(0)  # reap the dead leader and any orphans it left
                    self._launch()
                    self._up = True
                self._call(self.on_up)
                return
            except SupervisorError as exc:
                attempt += 1
                delay = backoff(attempt, BACKOFF_FIRST, BACKOFF_MAX)
                logger.error("%s did not come back (retrying in %gs): %s", self.name, delay, exc)
                self._stopping.wait(delay)

    def _free(self) -> None:
        """Ask ComfyUI to unload its models and free memory; log failures."""
        try:
            response = requests.post(f"{self.url}/free", json={"unload_models": True, "free_memory": True},
                                     timeout=(2, 5))
            response.raise_for_status()
            logger.info("%s idle for %gs: asked it to free memory", self.name, self.free_after_idle)
        except requests.RequestException as exc:
            logger.warning("%s: POST /free failed: %s", self.name, exc)
