"""Submit throughput of POST /v1/jobs under gunicorn (2 workers), measured with wrk.

Baseline, in the same run and under the same gunicorn settings: a bare Flask app
that parses the same body and answers 202 (bench/baseline_app.py). comfyq: the
real API with SQLite and Redis, no workers running (jobs pile up in the queue), and
the simulator's node catalogue published so validation checks every node as in production.
Usage: python bench/submit.py [seconds] [connections]
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import service_key, stack  # noqa: E402
from bench.overhead import WORKFLOW  # noqa: E402
from comfyq import catalogue  # noqa: E402
from comfyq.sim.process import free_port  # noqa: E402

GUNICORN = ["--workers", "2"]  # what `comfyq api` runs by default (sync workers)


def ensure_wrk() -> str:
    """Return the wrk binary, installing Debian's package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk") or "wrk"


def load(url: str, seconds: int, connections: int, key: str = "") -> dict[str, float]:
    """POST the workflow to ``url`` for ``seconds`` (with API ``key``); return rate, p50, p99 and errors."""
    script = Path(tempfile.mkdtemp()) / "post.lua"
    body = json.dumps({"workflow": WORKFLOW})
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    out = subprocess.run([ensure_wrk(), "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": ms("50%"), "p99": ms("99%"), "errors": int(errors.group(1)) if errors else 0}


def baseline(seconds: int, connections: int) -> dict[str, float]:
    """Measure the bare Flask app under the same gunicorn settings."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN,
                             "bench.baseline_app:app"], cwd=Path(__file__).resolve().parent.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                requests.post(f"http://127.0.0.1:{port}/v1/jobs", json={"workflow": WORKFLOW}, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        return load(f"http://127.0.0.1:{port}/v1/jobs", seconds, connections)
    finally:
        proc.terminate()
        proc.wait(10)


def main(seconds: int = 10, connections: int = 8) -> None:
    """Measure both and print the comparison."""
    base = baseline(seconds, connections)
    with stack(sims=1, workers=False) as running:
        sim_url = running.env["COMFYQ_INSTANCES"].split("=", 1)[1]
        catalogue.publish(redis.Redis.from_url(running.env["COMFYQ_REDIS_URL"]), "gpu0",
                          requests.get(f"{sim_url}/object_info", timeout=10).json())
        ours = load(f"http://127.0.0.1:{running.api_port}/v1/jobs", seconds, connections, service_key(running))
    print(f"submit bench: wrk {seconds} s, {connections} connections, gunicorn {' '.join(GUNICORN)}")
    for name, r in (("bare Flask 202 (baseline)", base), ("comfyq POST /v1/jobs", ours)):
        print(f"  {name:<27} {r['rate']:8.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
              f"non-2xx {r['errors']}")
    print(f"  ratio comfyq/baseline: throughput {ours['rate'] / base['rate']:.2f}x, "
          f"p99 {ours['p99'] / base['p99']:.2f}x (targets: >= 1000 jobs/s, p99 <= 50 ms)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
