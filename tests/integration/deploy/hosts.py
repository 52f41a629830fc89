"""Hosts of a comfyq fleet, each a folder of its own and a set of real processes, meeting only over TCP.

A control host runs Redis, the API and the reconciler beside PostgreSQL and an S3
server; a GPU host runs one ComfyUI (a simulator) and the worker that owns it.
No two hosts share a directory: each has its own working directory and
COMFYQ_DATA_DIR, and its environment is built from the fleet's settings alone,
never from this test process's COMFYQ_* or AWS_* variables.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
import requests

from comfyq.cli import redis_server
from comfyq.sim.process import SimProcess, free_port
from tests.integration.conftest import stop_group


def host_env(settings: dict[str, str], data_dir: Path) -> dict[str, str]:
    """Return a process environment of ``settings`` and ``data_dir`` plus what is not comfyq's or AWS's."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYQ_", "AWS_"))}
    return {**inherited, **settings, "COMFYQ_DATA_DIR": str(data_dir)}


class Host:
    """One machine of the fleet: a folder and the comfyq processes started in it."""

    def __init__(self, name: str, base: Path, settings: dict[str, str]) -> None:
        self.name, self.dir = name, base / name
        self.dir.mkdir(parents=True)
        self.env = host_env(settings, self.dir / "data")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``comfyq ARGS`` in this host's folder, in a session of its own, logging to ``ROLE.log``."""
        with open(self.dir / f"{role}.log", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "comfyq", *args], env=self.env, cwd=self.dir,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[role] = proc
        return proc

    def comfyq(self, *args: str) -> str:
        """Run a one-off ``comfyq`` command on this host; return its output."""
        done = subprocess.run([sys.executable, "-m", "comfyq", *args], env=self.env, cwd=self.dir,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def log(self, role: str) -> str:
        """Return the end of a process's log."""
        path = self.dir / f"{role}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop this host's processes, the last started first (SIGTERM, then SIGKILL what stays)."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                stop_group(proc, grace=20)


class ControlHost(Host):
    """Redis, the API and beat; PostgreSQL and the S3 server are reached by URL like any other host does."""

    def start_redis(self) -> None:
        """Start this host's Redis, on the port of its COMFYQ_REDIS_URL."""
        port = urlsplit(self.env["COMFYQ_REDIS_URL"]).port
        assert port is not None
        self.procs["redis"] = redis_server.start(port, self.dir / "redis", stdout=subprocess.DEVNULL,
                                                 start_new_session=True)

    def start_api(self) -> str:
        """Start ``comfyq api`` and the reconciler (``comfyq beat``); return the API's URL once it answers."""
        port = free_port()
        proc = self.spawn("api", "api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
        self.spawn("beat", "beat", "--loglevel", "INFO")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, self.log("api")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/healthz", timeout=5).ok:
                    return url
            time.sleep(0.1)


class GpuHost(Host):
    """One ComfyUI and the `comfyq worker` that owns it."""

    def __init__(self, name: str, base: Path, settings: dict[str, str], instance: str, port: int) -> None:
        super().__init__(name, base, settings)
        self.instance = instance
        self.comfyui = SimProcess(port, output_dir=str(self.dir / "comfyui"))

    def start(self) -> None:
        """Start ComfyUI, then the worker."""
        self.comfyui.start()
        self.spawn("worker", "worker", self.instance, "--loglevel", "INFO")

    def wait_ready(self, broker: redis.Redis, timeout: float = 90) -> None:
        """Block until the worker reports its instance healthy with its intake open."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.procs["worker"].poll() is None, self.log("worker")
            status = broker.hgetall(f"comfyq:instance:{self.instance}")
            if status.get(b"state") == b"healthy" and status.get(b"intake") == b"open":
                return
            assert time.monotonic() < deadline, self.log("worker")
            time.sleep(0.1)

    def power_off(self) -> None:
        """Lose the host at once: SIGKILL the worker's process group and ComfyUI's, no drain, no goodbye."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs["worker"].pid, signal.SIGKILL)
        self.procs["worker"].wait(10)
        self.comfyui.kill()

    def stop(self) -> None:
        """Stop the worker, then ComfyUI."""
        super().stop()
        self.comfyui.stop()
