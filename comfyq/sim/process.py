"""Run a simulator as a child process: for tests, benchmarks and ``comfyq up``."""
from __future__ import annotations

import collections
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from types import TracebackType
from typing import IO, Any

from . import journal

LISTENING = re.compile(r"comfyq-sim listening on http://(?P<host>[^\s]+):(?P<port>\d+)")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _pump(stream: IO[str] | None, lines: "queue.Queue[str | None]") -> None:
    """Copy a child's stdout lines into a queue, then None at end of file."""
    if stream is None:
        return
    for line in stream:
        lines.put(line)
    lines.put(None)


class SimProcess:
    """A ``python -m comfyq.sim`` child process with start, stop, kill and restart.

    With ``port=None`` the child binds port 0 and reports the port it got, so
    parallel tests never race for ports; ``restart()`` keeps that port and
    the same base directory, like a ComfyUI restarted on the same machine.
    Every child appends to ``journal.log`` there, so the journal spans restarts.
    """

    def __init__(self, port: int | None = None, *, output_dir: str | None = None,
                 knobs: dict[str, Any] | None = None, python: str = sys.executable,
                 host: str = "127.0.0.1", extra_args: list[str] | None = None) -> None:
        self.host = host
        self.port = port
        self.knobs = dict(knobs or {})
        self.python = python
        self.extra_args = list(extra_args or [])
        self._owns_dir = output_dir is None
        self.output_dir = output_dir or tempfile.mkdtemp(prefix="comfyq-sim-")
        self.log_path = os.path.join(self.output_dir, "sim.log")
        self.journal_path = os.path.join(self.output_dir, "journal.log")
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:8188``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Return the websocket URL without the clientId query."""
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def alive(self) -> bool:
        """Tell whether the child process is running."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Return the child's exit status, None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def command(self) -> list[str]:
        """Return the command line that starts the child."""
        cmd = [self.python, "-m", "comfyq.sim", "--host", self.host, "--port", str(self.port or 0),
               "--output-dir", self.output_dir, "--journal", self.journal_path]
        if self.knobs:
            cmd += ["--knobs", json.dumps(self.knobs)]
        return cmd + self.extra_args

    def start(self, timeout: float = 10) -> "SimProcess":
        """Launch the child and wait until it listens; raise TimeoutError if it does not."""
        if self.alive:
            return self
        # A fresh queue per child: the previous child's reader may still be draining into its own.
        lines: queue.Queue[str | None] = queue.Queue()
        os.makedirs(self.output_dir, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                                         start_new_session=True)
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                self.kill()
                raise TimeoutError(f"simulator did not listen within {timeout}s; see {self.log_path}") from None
            if line is None:
                self.wait(5)
                raise RuntimeError(f"simulator exited with {self.returncode} before listening:\n{self.log_tail()}")
            match = LISTENING.search(line)
            if match:
                self.port = int(match["port"])
                return self

    def journal_counts(self, event: str = "started") -> collections.Counter[str]:
        """Return prompt id -> how many times the journal records event, across restarts."""
        return journal.counts(self.journal_path, event)

    def log_tail(self, chars: int = 4000) -> str:
        """Return the end of the child's stderr log."""
        try:
            with open(self.log_path) as fh:
                return fh.read()[-chars:]
        except OSError:
            return ""

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the child to exit; return its status (None on timeout)."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 5) -> None:
        """Terminate the child, killing it if it has not exited after grace seconds."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        if self.wait(grace) is None:
            self.kill()

    def kill(self) -> None:
        """Kill the child at once (a crash, as far as clients can tell)."""
        self._signal(signal.SIGKILL)
        self.wait(5)

    def restart(self, timeout: float = 10) -> "SimProcess":
        """Stop and start again on the same port and directory."""
        self.stop()
        return self.start(timeout)

    def freeze(self) -> None:
        """Suspend the child (SIGSTOP): sockets stay open but nothing answers."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Resume a suspended child (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def cleanup(self) -> None:
        """Remove the base directory if this object created it."""
        if self._owns_dir:
            shutil.rmtree(self.output_dir, ignore_errors=True)

    def __enter__(self) -> "SimProcess":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self.cleanup()
