"""``comfyq up``: Redis, simulators, API, one worker per instance, beat (with webhooks) and Flower, kept running.

Every child runs in its own session. One that dies is restarted after a short,
growing delay (``comfyq.processes.restarts``), once what is left of its process group is
killed; one that dies 5 times within a minute stops the whole stack, as do
Ctrl-C, SIGTERM and SIGHUP. ``<data dir>/up/pids.json`` names each child's pid.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TextIO

from . import redis_server
from .children import Child, Rewrite
from ..config.settings import default_data_dir, parse_instances
from ..processes.restarts import ordinal

SIM_PORTS = (8188, 8189)
# Stop order: no new jobs first, then workers finish theirs, Redis goes last.
# beat, the webhooks worker too, stops after the GPU workers, so it still sends the ends of jobs they finish draining.
STOP_RANK = {"api": 0, "worker": 1, "beat": 2, "flower": 2, "sim": 3, "redis": 4}
ROOT_NOTE = ("running as root, which Celery advises against (said once here instead of a SecurityWarning "
             "from each worker); run comfyq as an unprivileged user in production")
EDITOR_HINT = ("ComfyUI's editor for a student: create them once (python3 -m comfyq users create student1 "
               "--role student --credits 20 --no-key), then mint a single-use link to open in their browser within "
               "5 minutes: curl -s -X POST {api}/v1/editor-sessions -H \"Authorization: Bearer $COMFYQ_API_KEY\" "
               "-H 'Content-Type: application/json' -d '{{\"user\": \"student1\"}}'  → {{\"link\": ...}}")
OVERCOMMIT_NOTE = ("vm.overcommit_memory is 0, so a rewrite of the append-only file may fail when memory is short; "
                   "`sysctl vm.overcommit_memory=1` fixes it (Redis's own warning, shortened)\n")


def _redis_rewrite(line: str) -> str | None:
    """Shorten Redis's overcommit warning, printed at every start, to one line that says what it means here."""
    return OVERCOMMIT_NOTE if "overcommit" in line else None


class Stack:
    """Start every comfyq process in order, restart any that dies, and stop them all, leaving nothing behind."""

    def __init__(self, api_port: int = 8000, flower_port: int = 5555, redis_port: int = 6379,
                 host: str = "127.0.0.1", sim_ports: tuple[int, ...] = SIM_PORTS,
                 workers: bool = True, flower: bool = True, output: TextIO = sys.stdout,
                 sim_catalogue: str | None = None, api_workers: int = 1) -> None:
        self.api_workers = api_workers
        self.api_port, self.flower_port, self.redis_port, self.host = api_port, flower_port, redis_port, host
        self.sim_ports = sim_ports
        self.sim_catalogue = os.path.abspath(sim_catalogue) if sim_catalogue else None
        self.with_workers, self.with_flower, self.output = workers, flower, output
        self.children: list[Child] = []
        self.redis: Child | None = None  # the Redis we started, if any
        self.stopping = threading.Event()
        self.env = dict(os.environ)
        self.data_dir = Path(self.env.get("COMFYQ_DATA_DIR") or default_data_dir())
        self.env["COMFYQ_DATA_DIR"] = str(self.data_dir)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.pid_file = self.data_dir / "up" / "pids.json"

    def say(self, message: str) -> None:
        """Print one line of our own."""
        print(f"comfyq up: {message}", file=self.output, flush=True)

    def spawn(self, name: str, role: str, argv: list[str], rewrite: Rewrite | None = None) -> Child:
        """Start a child and supervise it from now on."""
        child = Child(name, argv, STOP_RANK[role], dict(self.env), self.output, rewrite)
        child.start()
        self.children.append(child)
        self.write_pids()
        return child

    def comfyq(self, name: str, *args: str) -> Child:
        """Start ``comfyq ARGS`` as a child; its first argument is its role."""
        return self.spawn(name, args[0], [sys.executable, "-m", "comfyq", *args])

    def start(self) -> None:
        """Start everything and wait until the API is healthy."""
        if not self.env.get("COMFYQ_INSTANCES"):
            where = ", ".join(f"gpu{i} on :{port}" for i, port in enumerate(self.sim_ports))
            self.say(f"no COMFYQ_INSTANCES set, so starting {len(self.sim_ports)} ComfyUI simulators "
                     f"({where}); they are test doubles, not ComfyUI")
            recorded = ["--catalogue", self.sim_catalogue] if self.sim_catalogue else []
            if self.sim_catalogue:
                self.say(f"the simulators serve the recorded catalogue {self.sim_catalogue}")
                # Templates are checked against what the instances offer.
                self.env.setdefault("COMFYQ_TEMPLATE_CATALOGUE", self.sim_catalogue)
            for i, port in enumerate(self.sim_ports):
                self.comfyq(f"sim{i}", "sim", "--port", str(port), "--output-dir", str(self.data_dir / f"sim{i}"),
                            *recorded)
            self.env["COMFYQ_INSTANCES"] = ",".join(
                f"gpu{i}=http://127.0.0.1:{port}" for i, port in enumerate(self.sim_ports))
            if len(self.sim_ports) > 1:
                # So templates that require SDXL have an instance to run on.
                self.env.setdefault("COMFYQ_CAPABILITIES", "gpu1=sdxl")
        else:
            self.say(f"instances {self.env['COMFYQ_INSTANCES']}")
        if not self.env.get("COMFYQ_REDIS_URL"):
            self.env["COMFYQ_REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
            redis_dir = self.data_dir / "redis"
            redis_dir.mkdir(parents=True, exist_ok=True)
            self.redis = self.spawn("redis", "redis", redis_server.command(self.redis_port, redis_dir, persist=True),
                                    _redis_rewrite)
            redis_server.wait_ready(self.env["COMFYQ_REDIS_URL"], self.redis.proc)
        else:
            redis_server.wait_ready(self.env["COMFYQ_REDIS_URL"])
        self.bootstrap_admin()
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self.say(ROOT_NOTE)
            self.env["COMFYQ_ROOT_NOTED"] = "1"  # comfyq's Celery workers then keep quiet about it
        self.comfyq("api", "api", "--host", self.host, "--port", str(self.api_port), "--workers", str(self.api_workers))
        for name in parse_instances(self.env["COMFYQ_INSTANCES"]) if self.with_workers else ():
            self.comfyq(name, "worker", name)
        if self.with_workers:  # the control process is the webhooks worker too: one process fewer
            self.comfyq("beat", "beat", "--webhooks")
        if self.with_flower:
            self.comfyq("flower", "flower", "--port", str(self.flower_port), "--address", self.host)
        self.wait_healthy()
        flower = f", Flower http://{self.host}:{self.flower_port}" if self.with_flower else ""
        self.say(f"API http://{self.host}:{self.api_port} (docs /docs){flower}; Ctrl-C stops everything")
        self.say(EDITOR_HINT.format(api=f"http://{self.host}:{self.api_port}"))

    def bootstrap_admin(self) -> None:
        """On a fresh database, create user admin and print its API key (the only time it is shown)."""
        done = subprocess.run([sys.executable, "-m", "comfyq", "users", "bootstrap"], env=self.env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"could not prepare the database: {done.stderr.strip()[-2000:]}")
        if done.stdout.strip():
            self.say(done.stdout.strip())

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Block until /healthz answers 200, restarting children that die meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            self.supervise()
            try:
                # urllib, not requests: the supervisor stays small (it only ever asks this).
                with urllib.request.urlopen(f"http://{self.host}:{self.api_port}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        if self.stopping.is_set():
            return
        raise RuntimeError(f"the API did not become healthy within {timeout} s")

    def supervise(self) -> None:
        """Schedule a restart of each child that died, start those whose delay is over; raise on a crash loop."""
        for child in self.children:
            if child.due is not None:
                if time.monotonic() >= child.due and not self.stopping.is_set():
                    self.restart(child)
                continue
            code = child.exited()
            if code is None:
                continue
            child.kill_leftovers()  # a killed Celery main leaves pool children, a killed uvicorn its workers
            delay = child.restarts.died()
            if delay is None:
                raise RuntimeError(
                    f"{child.name} died {child.restarts.limit} times within {child.restarts.window:g} s, last with "
                    f"code {code}; its last output: {child.last_output()}")
            self.say(f"{child.name} exited with code {code}; restarting in {delay:g} s "
                     f"({ordinal(child.restarts.recent())} restart in the last minute)")
            child.due = time.monotonic() + delay
            self.write_pids()

    def restart(self, child: Child) -> None:
        """Start a dead child again (its leftovers went when its death was seen); wait for Redis, which all rely on."""
        child.start()
        self.write_pids()
        self.say(f"{child.name} restarted (pid {child.pid})")
        if child is self.redis:
            try:
                redis_server.wait_ready(self.env["COMFYQ_REDIS_URL"], child.proc)
            except RuntimeError as exc:  # it died again: the next round counts that
                self.say(str(exc))

    def write_pids(self) -> None:
        """Record each live child's pid, for operators and tests (replaced atomically)."""
        pids = {child.name: child.pid if child.due is None else None for child in self.children}
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        fresh = self.pid_file.with_suffix(".tmp")
        fresh.write_text(json.dumps({"up": os.getpid(), "children": pids}, indent=1))
        fresh.replace(self.pid_file)

    def stop(self, grace: float = 20.0) -> None:
        """Stop children rank by rank: SIGTERM the leader (a warm shutdown), then SIGKILL its group."""
        for rank in sorted({child.rank for child in self.children}):
            group = [child for child in self.children if child.rank == rank]
            for child in group:
                child.terminate()
            deadline = time.monotonic() + grace
            for child in group:
                child.finish(deadline - time.monotonic())
        self.children.clear()
        self.pid_file.unlink(missing_ok=True)

    def run(self) -> int:
        """Start and supervise until Ctrl-C/SIGTERM/SIGHUP or a crash loop, then stop; return an exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stopping.set())
        code = 0
        try:
            self.start()
            while not self.stopping.wait(0.2):
                self.supervise()
        except RuntimeError as exc:
            print(f"comfyq up: {exc}; stopping", file=sys.stderr, flush=True)
            code = 1
        finally:
            print("comfyq up: stopping", flush=True)
            self.stop()
            print("comfyq up: stopped", flush=True)
        return code
