"""Submit throughput of POST /v1/jobs under `comfyq api` (uvicorn, 2 processes), measured with wrk.

Baseline, in the same run and under the same server settings: a bare Flask app
that parses the same body and answers 202 (bench/baseline_app.py). comfyq: the
real API with SQLite and Redis, no workers running (jobs pile up: the first is
queued, the rest stay pending beyond the running cap, so every submit runs an
admission pass), and the simulator's node catalogue published so validation
checks every node as in production. Two comfyq runs, each on a fresh stack:
a service key (a free role: no debit) and a metered key (role user, level
expert, 10,000,000 credits: auth + debit + ledger entry + admission). Both users
have their own limits max_waiting 0 and rate_per_minute 0 (no limit), so the runs
measure the work of accepting a job, not refusals. wrk counts the answers by
status; after the metered run the DB is checked: one debit per job created and
balance = credits granted - jobs = the ledger's sum.
Usage: python bench/submit.py [seconds] [connections]
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import stack, user_key  # noqa: E402
from bench.overhead import WORKFLOW  # noqa: E402
from comfyq.workflows import published as catalogue  # noqa: E402
from comfyq.sim.process import free_port  # noqa: E402

# What `comfyq api` runs by default: 2 uvicorn processes, Flask in 1 thread each (SQLite).
SERVER = ["--workers", "2", "--loop", "uvloop", "--http", "httptools"]
CREDITS = 10_000_000
EARLIER = "235-394 jobs/s (README, service key, before accounts; another day, so no ratio)"
# Count the answers by status in each wrk thread and keep the first refusal's body.
STATUS_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} refusal = "" end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 300 and refusal == "" then refusal = body end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do io.write(string.format("status %d %d\\n", status, n)) end
    local body = thread:get("refusal")
    if body ~= "" then io.write("refusal " .. string.gsub(body, "\\n", " ") .. "\\n") end
  end
end
"""


def ensure_wrk() -> str:
    """Return the wrk binary, installing Debian's package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk") or "wrk"


def load(url: str, seconds: int, connections: int, key: str = "") -> dict[str, Any]:
    """POST the workflow to ``url`` for ``seconds`` (with API ``key``); return rate, p50, p99, errors, statuses."""
    script = Path(tempfile.mkdtemp()) / "post.lua"
    body = json.dumps({"workflow": WORKFLOW})
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.headers["Authorization"] = "Bearer {key}"\n' + STATUS_LUA)
    try:
        out = subprocess.run([ensure_wrk(), "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                              "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    finally:
        shutil.rmtree(script.parent, ignore_errors=True)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    statuses: dict[int, int] = {}
    for status, number in re.findall(r"^status (\d+) (\d+)$", out, re.M):
        statuses[int(status)] = statuses.get(int(status), 0) + int(number)
    return {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": ms("50%"), "p99": ms("99%"), "errors": int(errors.group(1)) if errors else 0,
            "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0, "statuses": statuses,
            "refusals": re.findall(r"^refusal (.*)$", out, re.M)}


def baseline(seconds: int, connections: int) -> dict[str, Any]:
    """Measure the bare Flask app under the same server settings."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--port", str(port), *SERVER, "--no-access-log",
                             "bench.baseline_app:asgi"], cwd=Path(__file__).resolve().parent.parent,
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


def publish_catalogue(running: Any) -> None:
    """Publish the simulator's node catalogue, as a worker would, so validation checks every node."""
    sim_url = running.env["COMFYQ_INSTANCES"].split("=", 1)[1]
    catalogue.publish(redis.Redis.from_url(running.env["COMFYQ_REDIS_URL"]), "gpu0",
                      requests.get(f"{sim_url}/object_info", timeout=10).json())


def audit(running: Any, name: str) -> dict[str, int]:
    """Return the jobs by status, debits, balance and ledger sum of user ``name`` in the stack's SQLite DB."""
    with contextlib.closing(sqlite3.connect(Path(running.env["COMFYQ_DATA_DIR"]) / "comfyq.db")) as conn:
        user_id, balance = conn.execute("SELECT id, balance FROM users WHERE name = ?", (name,)).fetchone()
        jobs = dict(conn.execute("SELECT status, count(*) FROM jobs WHERE user_id = ? GROUP BY status", (user_id,)))
        debits = conn.execute("SELECT count(*), coalesce(sum(amount), 0) FROM ledger WHERE user_id = ? "
                              "AND kind = 'debit'", (user_id,)).fetchone()
        ledger = conn.execute("SELECT coalesce(sum(amount), 0) FROM ledger WHERE user_id = ?", (user_id,)).fetchone()
    return {"jobs": sum(jobs.values()), "pending": jobs.get("pending", 0), "queued": jobs.get("queued", 0),
            "debits": debits[0], "debited": -debits[1], "balance": balance, "ledger": ledger[0]}


def comfyq_run(seconds: int, connections: int, name: str, role: str,
               credits: int) -> tuple[dict[str, Any], dict[str, int]]:
    """Measure POST /v1/jobs with a fresh stack and a key of a new ``role`` user; return wrk's and the DB's figures."""
    data = ""
    try:
        with stack(sims=1, workers=False) as running:
            data = running.env["COMFYQ_DATA_DIR"]
            publish_catalogue(running)
            key = user_key(running, name, role, credits, max_waiting=0, rate_per_minute=0)
            result = load(f"http://127.0.0.1:{running.api_port}/v1/jobs", seconds, connections, key)
            time.sleep(0.5)  # requests wrk gave up on at the end may still be committing
            return result, audit(running, name)
    finally:
        if data:
            shutil.rmtree(data, ignore_errors=True)  # the stack's data dir, once it stopped


def main(seconds: int = 10, connections: int = 8) -> None:
    """Measure the baseline and both comfyq runs, check the ledger, and print the comparison."""
    base = baseline(seconds, connections)
    service, service_db = comfyq_run(seconds, connections, "bench-service", "service", 0)
    metered, metered_db = comfyq_run(seconds, connections, "bench-metered", "user", CREDITS)
    print(f"submit bench: wrk {seconds} s, {connections} connections, uvicorn {' '.join(SERVER)}, "
          "SQLite, no workers")
    rows: tuple[tuple[str, dict[str, Any], dict[str, int] | None], ...] = (
        ("bare Flask 202 (baseline)", base, None), ("comfyq, service key (free)", service, service_db),
            ("comfyq, metered user key", metered, metered_db))
    for name, r, stored in rows:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(r["statuses"].items()))
        print(f"  {name:<27} {r['rate']:8.0f} jobs/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
              f"non-2xx {r['errors']}  socket errors {r['socket_errors']}  ({codes})"
              + (f"  jobs stored {stored['jobs']}" if stored else ""))
        for body in r["refusals"]:
            print(f"    first refusal: {body[:300]}")
    print(f"  ratio metered/baseline: throughput {metered['rate'] / base['rate']:.3f}x, "
          f"p99 {metered['p99'] / base['p99']:.2f}x")
    print(f"  ratio metered/service:  throughput {metered['rate'] / service['rate']:.2f}x, "
          f"p99 {metered['p99'] / service['p99']:.2f}x")
    print(f"  ratio service/baseline: throughput {service['rate'] / base['rate']:.3f}x, "
          f"p99 {service['p99'] / base['p99']:.2f}x (targets: >= 1000 jobs/s, p99 <= 50 ms)")
    m = metered_db
    exact = m["debits"] == m["jobs"] == m["debited"] and m["balance"] == CREDITS - m["jobs"] == m["ledger"]
    print(f"  metered ledger: {m['jobs']} jobs ({m['queued']} queued, {m['pending']} pending), {m['debits']} "
          f"debits of {m['debited']} credits, balance {m['balance']} = {CREDITS} - {CREDITS - m['balance']}, "
          f"ledger sum {m['ledger']}: {'exact' if exact else 'MISMATCH'}")
    print(f"  for reference, earlier: {EARLIER}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
