"""Start a private comfyq stack for a benchmark, on free ports, and stop it afterwards."""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Iterator

from comfyq.sim.process import free_port
from comfyq.cli.stack import Stack


@contextlib.contextmanager
def stack(sims: int = 1, workers: bool = True, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """Yield a running Stack with ``sims`` simulators, two API processes and no Flower, with extra ``env``; logs to a file."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("COMFYQ_")}
    for key in saved:
        del os.environ[key]
    data = tempfile.mkdtemp(prefix="comfyq-bench-")
    os.environ["COMFYQ_DATA_DIR"] = data
    os.environ.update(env or {})
    log = open(os.path.join(data, "stack.log"), "w")
    running = Stack(api_port=free_port(), redis_port=free_port(), sim_ports=tuple(free_port() for _ in range(sims)),
                    workers=workers, flower=False, output=log, api_workers=2)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        log.close()
        for key in [k for k in os.environ if k.startswith("COMFYQ_")]:
            del os.environ[key]
        os.environ.update(saved)


def percentile(values: list[float], pct: float) -> float:
    """Return the ``pct`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> str:
    """Return 'median / p99' in milliseconds."""
    return f"median {statistics.median(values) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms"


def service_key(running: Stack) -> str:
    """Create a service user in the stack's database and return its API key."""
    done = subprocess.run([sys.executable, "-m", "comfyq", "users", "create", "bench", "--role", "service",
                           "--level", "expert"], env=running.env, capture_output=True, text=True, check=True)
    return done.stdout.split()[-1]


def user_key(running: Stack, name: str, role: str = "user", credits: int = 0, level: str = "expert",
             **limits: int) -> str:
    """Create user ``name`` with ``credits`` and its own ``limits`` in the stack's database; return its API key.

    ``limits`` takes the fields of comfyq.accounts.limits (max_running, max_waiting, rate_per_minute); 0 means no
    limit for waiting and rate.
    """
    done = subprocess.run([sys.executable, "-m", "comfyq", "users", "create", name, "--role", role, "--level", level,
                           "--credits", str(credits)], env=running.env, capture_output=True, text=True, check=True)
    flags = {"max_running": "--running", "max_waiting": "--waiting", "rate_per_minute": "--rate"}
    if limits:
        subprocess.run([sys.executable, "-m", "comfyq", "users", "limits", name,
                        *(arg for field, value in limits.items() for arg in (flags[field], str(value)))],
                       env=running.env, capture_output=True, text=True, check=True)
    return done.stdout.split()[-1]
