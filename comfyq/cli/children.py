"""The children of ``comfyq up``: each knows how to start itself, copies its output and counts its deaths."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import deque
from typing import Callable, TextIO

from ..processes.restarts import Restarts

# A line of a child's output → what to print instead (None: the line itself).
Rewrite = Callable[[str], str | None]


class Child:
    """One supervised process: its command, the current process, its recent output and its restarts."""

    def __init__(self, name: str, argv: list[str], rank: int, env: dict[str, str], output: TextIO,
                 rewrite: Rewrite | None = None, restarts: Restarts | None = None) -> None:
        self.name, self.argv, self.rank, self.env, self.output = name, argv, rank, env, output
        self.rewrite = rewrite
        self.restarts = restarts or Restarts()
        self.tail: deque[str] = deque(maxlen=3)
        self.due: float | None = None  # when a dead child is to start again
        self.proc: subprocess.Popen[bytes] | None = None
        self.pumps: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        """Return the current process's id, None before the first start."""
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start the command in its own session, so that we alone decide when it stops."""
        self.due = None
        self.tail.clear()
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        pump = threading.Thread(target=self._pump, args=(self.proc,), name=f"pump-{self.name}", daemon=True)
        pump.start()
        self.pumps = [p for p in self.pumps if p.is_alive()] + [pump]

    def exited(self) -> int | None:
        """Return the exit code once the process has ended (a signal as its negative), else None."""
        return None if self.proc is None else self.proc.poll()

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        """Copy one process's output to ours, each line prefixed with the child's name."""
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            if line.strip() and proc is self.proc:  # not what leftovers of an earlier process still print
                self.tail.append(line.strip()[:200])
            shown = self.rewrite(line) if self.rewrite else None
            self.output.write(f"{self.name:>8} | {line if shown is None else shown}")
            self.output.flush()
        proc.stdout.close()

    def last_output(self) -> str:
        """Return the last lines the current process printed, on one line."""
        return " | ".join(self.tail) or "(nothing)"

    def kill_leftovers(self) -> None:
        """SIGKILL what is left of the process group (pool children, server workers) once its leader is gone."""
        if self.proc is not None:
            signal_group(self.proc, signal.SIGKILL)

    def terminate(self) -> None:
        """Ask the leader to stop (a warm shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the leader, then SIGKILL its whole group and reap it."""
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.1, timeout))
        except subprocess.TimeoutExpired:
            pass
        self.kill_leftovers()
        self.proc.wait()
        for pump in self.pumps:
            pump.join(timeout=2)


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal a child's whole process group, if any of it is left."""
    # The group keeps the leader's id while any member lives, and Linux hands out no pid still in use as a group id.
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
