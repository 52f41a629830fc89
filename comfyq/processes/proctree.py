"""Process trees: their memory, their log, and stopping one without leaving anything behind."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil


def _descendants(pid: int) -> list[psutil.Process]:
    """Return every live descendant of pid (none if it is gone)."""
    try:
        children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    return children


def _signal_group(pgid: int, signum: int) -> None:
    """Send signum to a process group that may be gone."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def tree_rss(pid: int) -> int:
    """Return the resident memory of pid plus all its descendants, in bytes (0 if it is gone)."""
    try:
        procs = [psutil.Process(pid), *_descendants(pid)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def log_tail(path: str, chars: int = 2000) -> str:
    """Return the last chars of a log file, stripped ("" if it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(os.fstat(fh.fileno()).st_size - chars, 0))
            return fh.read().decode(errors="replace").strip()
    except OSError:
        return ""


def terminate_tree(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM proc's process group and descendants, SIGKILL what is left after grace; return its status.

    proc must lead its own process group (``start_new_session=True``).
    """
    deadline = time.monotonic() + grace
    # Listed first, while the leader is unreaped and its pid cannot name another process;
    # once it is gone its orphans are reached through the group alone.
    family = _descendants(proc.pid) if proc.poll() is None else []
    _signal_group(proc.pid, signal.SIGTERM)
    for child in family:  # some may have left the group
        try:
            child.terminate()
        except psutil.Error:
            pass
    try:
        proc.wait(max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        pass
    _, alive = psutil.wait_procs(family, timeout=max(deadline - time.monotonic(), 0))
    # A SIGKILL to the group also catches children spawned while we waited.
    _signal_group(proc.pid, signal.SIGKILL)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None
