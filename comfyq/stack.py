"""``comfyq up``: Redis, simulators, API, one worker per instance, beat, webhooks and Flower as child processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import requests

from . import redis_server
from .config import default_data_dir, parse_instances

SIM_PORTS = (8188, 8189)
# Stop order: no new jobs first, then workers finish theirs, Redis goes last.
# The webhooks worker stops after the GPU workers, so it still sends the ends of jobs they finish while draining.
STOP_RANK = {"api": 0, "worker": 1, "beat": 2, "webhooks": 2, "flower": 2, "sim": 3, "redis": 4}


@dataclass
class Child:
    """One supervised process and the thread copying its output."""

    name: str
    proc: subprocess.Popen[bytes]
    output: TextIO
    rank: int
    pump: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        """Copy the child's output to ours, each line prefixed with the child's name."""
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.output.write(f"{self.name:>8} | {line.decode(errors='replace')}")
            self.output.flush()


class Stack:
    """Start every comfyq process in order; stop them all, leaving nothing behind."""

    def __init__(self, api_port: int = 8000, flower_port: int = 5555, redis_port: int = 6379,
                 host: str = "127.0.0.1", sim_ports: tuple[int, ...] = SIM_PORTS,
                 workers: bool = True, flower: bool = True, output: TextIO = sys.stdout) -> None:
        self.api_port, self.flower_port, self.redis_port, self.host = api_port, flower_port, redis_port, host
        self.sim_ports = sim_ports
        self.with_workers, self.with_flower, self.output = workers, flower, output
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.env = dict(os.environ)
        self.data_dir = Path(self.env.get("COMFYQ_DATA_DIR") or default_data_dir())
        self.env["COMFYQ_DATA_DIR"] = str(self.data_dir)
        self.env["PYTHONUNBUFFERED"] = "1"

    def spawn(self, name: str, role: str, argv: list[str]) -> Child:
        """Start a child in its own session so we alone decide when it stops."""
        proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, proc, self.output, STOP_RANK[role])
        self.children.append(child)
        return child

    def comfyq(self, name: str, *args: str) -> Child:
        """Start ``comfyq ARGS`` as a child; its first argument is its role."""
        return self.spawn(name, args[0], [sys.executable, "-m", "comfyq", *args])

    def start(self) -> None:
        """Start everything and wait until the API is healthy."""
        if not self.env.get("COMFYQ_INSTANCES"):
            where = ", ".join(f"gpu{i} on :{port}" for i, port in enumerate(self.sim_ports))
            print(f"comfyq up: no COMFYQ_INSTANCES set, so starting {len(self.sim_ports)} ComfyUI simulators "
                  f"({where}); they are test doubles, not ComfyUI", file=self.output, flush=True)
            for i, port in enumerate(self.sim_ports):
                self.comfyq(f"sim{i}", "sim", "--port", str(port),
                            "--output-dir", str(self.data_dir / f"sim{i}"))
            self.env["COMFYQ_INSTANCES"] = ",".join(
                f"gpu{i}=http://127.0.0.1:{port}" for i, port in enumerate(self.sim_ports))
            if len(self.sim_ports) > 1:
                # So templates that require SDXL have an instance to run on.
                self.env.setdefault("COMFYQ_CAPABILITIES", "gpu1=sdxl")
        else:
            print(f"comfyq up: instances {self.env['COMFYQ_INSTANCES']}", file=self.output, flush=True)
        if not self.env.get("COMFYQ_REDIS_URL"):
            self.env["COMFYQ_REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
            redis_dir = self.data_dir / "redis"
            redis_dir.mkdir(parents=True, exist_ok=True)
            child = self.spawn("redis", "redis", redis_server.command(self.redis_port, redis_dir, persist=True))
            redis_server.wait_ready(self.env["COMFYQ_REDIS_URL"], child.proc)
        else:
            redis_server.wait_ready(self.env["COMFYQ_REDIS_URL"])
        self.bootstrap_admin()
        self.comfyq("api", "api", "--host", self.host, "--port", str(self.api_port))
        for name in parse_instances(self.env["COMFYQ_INSTANCES"]) if self.with_workers else ():
            self.comfyq(name, "worker", name)
        if self.with_workers:
            self.comfyq("beat", "beat")
            self.comfyq("webhooks", "webhooks")
        if self.with_flower:
            self.comfyq("flower", "flower", "--port", str(self.flower_port), "--address", self.host)
        self.wait_healthy()
        flower = f", Flower http://{self.host}:{self.flower_port}" if self.with_flower else ""
        print(f"comfyq up: API http://{self.host}:{self.api_port} (docs /docs){flower}; "
              "Ctrl-C stops everything", file=self.output, flush=True)

    def bootstrap_admin(self) -> None:
        """On a fresh database, create user admin and print its API key (the only time it is shown)."""
        done = subprocess.run([sys.executable, "-m", "comfyq", "users", "bootstrap"], env=self.env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"could not prepare the database: {done.stderr.strip()[-2000:]}")
        if done.stdout.strip():
            print(f"comfyq up: {done.stdout.strip()}", file=self.output, flush=True)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Block until /healthz answers 200, or raise if a child dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            self.check_children()
            try:
                if requests.get(f"http://{self.host}:{self.api_port}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        if self.stopping.is_set():
            return
        raise RuntimeError(f"the API did not become healthy within {timeout} s")

    def check_children(self) -> None:
        """Raise if any child has exited."""
        for child in self.children:
            if child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}")

    def stop(self, grace: float = 20.0) -> None:
        """Stop children rank by rank: SIGTERM the leader (a warm shutdown), then SIGKILL its group."""
        for rank in sorted({child.rank for child in self.children}):
            group = [child for child in self.children if child.rank == rank]
            for child in group:
                if child.proc.poll() is None:
                    child.proc.terminate()
            deadline = time.monotonic() + grace
            for child in group:
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                _signal_group(child.proc, signal.SIGKILL)  # whatever is left in its group
                child.proc.wait()
        for child in self.children:
            child.pump.join(timeout=2)
        self.children.clear()

    def run(self) -> int:
        """Start, supervise until Ctrl-C/SIGTERM/SIGHUP or a child's death, then stop; return an exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stopping.set())
        code = 0
        try:
            self.start()
            while not self.stopping.wait(0.5):
                self.check_children()
        except RuntimeError as exc:
            print(f"comfyq up: {exc}; stopping", file=sys.stderr, flush=True)
            code = 1
        finally:
            print("comfyq up: stopping", flush=True)
            self.stop()
            print("comfyq up: stopped", flush=True)
        return code


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal a child's whole process group, if any of it is left."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
