"""A private comfyq stack per chaos test: its own Redis, simulators, prefork workers and reconciler.

Chaos tests kill and restart parts, so none of them may share the session stack.
Every process started here is tracked with its descendants, and ``stop`` asserts
that none is left behind.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import psutil
import redis
from flask import Flask
from flask.testing import FlaskClient

from comfyq.accounts import users as accounts
from comfyq import create_app
from comfyq.cli import redis_server
from comfyq.sim.process import SimProcess, free_port
from tests.integration.conftest import TERMINAL, with_key

# Short limits so recoveries show within seconds; each test may override.
BASE_ENV = {
    "COMFYQ_SOFT_TIME_LIMIT": "60", "COMFYQ_TIME_LIMIT_GRACE": "10", "COMFYQ_MAX_TIME_LIMIT": "120",
    "COMFYQ_INTERRUPT_GRACE": "2", "COMFYQ_CATALOGUE_TTL": "0", "COMFYQ_DRAIN_TIMEOUT": "3",
    "COMFYQ_RECONCILE_INTERVAL": "1", "COMFYQ_RECONCILE_GRACE": "2",
}


class ChaosStack:
    """Redis, simulators and workers for one test, each a real process."""

    def __init__(self, tmp: Path, names: tuple[str, ...] = ("gpu0", "gpu1"), env: dict[str, str] | None = None,
                 supervised: tuple[str, ...] = ()) -> None:
        self.tmp, self.names, self.supervised = tmp, names, supervised
        self.redis_port = free_port()
        self.sim_ports = {name: free_port() for name in names}
        self.sims: dict[str, SimProcess] = {}
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.procs: list[psutil.Process] = []
        self.redis_proc: subprocess.Popen[bytes] | None = None
        data = tmp / "data"
        self.env = {**BASE_ENV, "COMFYQ_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                    "COMFYQ_INSTANCES": ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in self.sim_ports.items()),
                    "COMFYQ_DATA_DIR": str(data), "COMFYQ_DATABASE_URL": f"sqlite:///{data}/comfyq.db",
                    "COMFYQ_OUTPUT_DIR": str(data / "outputs"), **(env or {})}
        self.app: Flask | None = None

    # -- processes -------------------------------------------------------------------------------------------

    def process_env(self) -> dict[str, str]:
        """Return the environment of this stack's processes: none of the session stack's COMFYQ_* settings."""
        return {**{k: v for k, v in os.environ.items() if not k.startswith("COMFYQ_")}, **self.env}

    def _track(self, pid: int) -> None:
        try:
            self.procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass

    def start_redis(self) -> None:
        """Start a Redis without persistence: a restart loses every key."""
        self.redis_proc = redis_server.start(self.redis_port, self.tmp / "redis", stdout=subprocess.DEVNULL)
        self._track(self.redis_proc.pid)

    def sim_dir(self, name: str) -> Path:
        path = self.tmp / f"sim-{name}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start_sim(self, name: str) -> SimProcess:
        sim = self.sims.get(name) or SimProcess(self.sim_ports[name], output_dir=str(self.sim_dir(name)))
        self.sims[name] = sim.start()
        self._track(sim.proc.pid)  # type: ignore[union-attr]
        return sim

    def start_worker(self, name: str, wait: bool = True) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "comfyq", "worker", name, "--loglevel", "INFO"]
        if name in self.supervised:
            sim_dir = self.sim_dir(name)
            sim_dir.mkdir(parents=True, exist_ok=True)
            argv += ["--comfy-cmd", f"{sys.executable} -m comfyq.sim --port {self.sim_ports[name]} "
                                    f"--output-dir {sim_dir} --journal {sim_dir / 'journal.log'}",
                     "--comfy-log", str(self.tmp / f"comfy-{name}.log"), "--comfy-ready-timeout", "30"]
        log = open(self.tmp / f"worker-{name}.log", "ab")
        proc = subprocess.Popen(argv, env=self.process_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.workers[name] = proc
        self._track(proc.pid)
        if wait:
            self.wait_worker(name)
        return proc

    def start_beat(self) -> None:
        log = open(self.tmp / "beat.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "comfyq", "beat", "--loglevel", "INFO"],
                                env=self.process_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.workers["beat"] = proc
        self._track(proc.pid)

    def wait_worker(self, name: str, timeout: float = 60) -> None:
        """Block until the worker of ``name`` reports its instance healthy with its intake open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.workers[name]
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited: {self.log(name)[-3000:]}")
            status = self.redis.hgetall(f"comfyq:instance:{name}")
            if status.get(b"state") == b"healthy" and status.get(b"intake") == b"open":
                self._track_tree(proc.pid)
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {name} not ready: {self.log(name)[-3000:]}")

    def _track_tree(self, pid: int) -> None:
        try:
            for child in psutil.Process(pid).children(recursive=True):
                if child not in self.procs:
                    self.procs.append(child)
        except psutil.NoSuchProcess:
            pass

    def start(self, beat: bool = True) -> "ChaosStack":
        self.start_redis()
        for name in self.names:
            if name not in self.supervised:
                self.start_sim(name)
        for name in self.names:
            self.start_worker(name, wait=False)
        for name in self.names:
            self.wait_worker(name)
        if beat:
            self.start_beat()
        return self

    def log(self, name: str) -> str:
        path = self.tmp / f"worker-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker_child(self, name: str) -> psutil.Process:
        """Return the prefork pool child of a worker (the process that runs jobs)."""
        children = [c for c in psutil.Process(self.workers[name].pid).children()
                    if "comfyq.sim" not in " ".join(c.cmdline())]
        assert len(children) == 1, children
        return children[0]

    def kill_worker(self, name: str) -> None:
        """Kill a worker's whole process group at once (main process and pool child)."""
        os.killpg(self.workers[name].pid, signal.SIGKILL)
        self.workers[name].wait(10)

    def stop(self) -> None:
        """Stop everything, then fail if any process we started (or its descendants) is still alive."""
        for proc in self.workers.values():
            self._track_tree(proc.pid)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for sim in self.sims.values():
            sim.stop()
        if self.redis_proc is not None:
            self.redis_proc.terminate()
            self.redis_proc.wait(10)
        gone, alive = psutil.wait_procs(self.procs, timeout=10)
        for proc in alive:
            proc.kill()
        assert not alive, f"left behind: {[(p.pid, p.cmdline()) for p in alive]}"

    # -- observing -------------------------------------------------------------------------------------------

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["COMFYQ_REDIS_URL"], socket_connect_timeout=1)

    @property
    def client(self) -> FlaskClient:
        """Return a test client of this stack's API, as a service user."""
        if self.app is None:
            saved = dict(os.environ)
            os.environ.clear()
            os.environ.update(self.process_env())
            try:
                self.app = create_app()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            with self.app.app_context():
                self.key = accounts.issue_key(accounts.create_user("chaos", "service", "expert"))[1]
        return with_key(self.app.test_client(), self.key)

    def submit(self, workflow: dict[str, Any], **extra: Any) -> str:
        response = self.client.post("/v1/jobs", json={"workflow": workflow, **extra})
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.get(f"/v1/jobs/{job_id}").get_json()

    def wait_status(self, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout} s: {job}"
            time.sleep(0.05)

    def running(self, workflow: dict[str, Any]) -> tuple[str, str, str]:
        """Submit a job and wait until its prompt runs; return its id, its instance and the other instance."""
        job_id = self.submit(workflow)
        instance = self.wait_status(job_id, {"running"}, timeout=30)["instance"]
        # "running" is recorded at the claim, before the prompt is sent: wait for the simulator to start it.
        wait_until(lambda: self.sims[instance].journal_counts("started")[job_id] >= 1, timeout=10)
        return job_id, instance, next(name for name in self.names if name != instance)

    def started(self) -> Counter[str]:
        """Return how many times each prompt started executing, over every simulator's journal."""
        total: Counter[str] = Counter()
        for name in self.names:
            path = self.sim_dir(name) / "journal.log"
            if path.exists():
                total.update(line.split()[1] for line in path.read_text().splitlines()
                             if line.startswith("started "))
        return total

    def _inspect(self, name: str, method: str) -> Any:
        """Return worker ``name``'s answer to an ``inspect`` method; fail if it does not answer."""
        assert self.client is not None and self.app is not None
        replies = getattr(self.app.extensions["celery"].control.inspect(timeout=2), method)() or {}
        mine = [answer for host, answer in replies.items() if host.startswith(f"{name}@")]
        assert len(mine) == 1, f"worker {name} did not answer inspect {method}: {sorted(replies)}"
        return mine[0]

    def stats(self, name: str) -> dict[str, Any]:
        """Return worker ``name``'s ``inspect stats`` (what Flower's worker page shows)."""
        return self._inspect(name, "stats")

    def consumes(self, name: str) -> set[str]:
        """Return the queues worker ``name`` consumes, as Celery's inspect reports them."""
        return {q["name"] for q in self._inspect(name, "active_queues")}


def wait_until(check: Callable[[], object], timeout: float, every: float = 0.05) -> float:
    """Poll ``check`` until true; return the seconds it took (fail after ``timeout``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition never became true"
        time.sleep(every)
    return time.monotonic() - start
