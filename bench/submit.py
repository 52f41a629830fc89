"""Submit throughput of POST /v1/jobs and POST /v1/batches under `comfyq api` (uvicorn, 2 processes), with wrk.

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
balance = credits granted - jobs = the ledger's sum. A third run posts batches
(one template, BATCH_SIZE variants, metered key) and counts jobs/s; its ledger
is checked likewise. Each comfyq run is made on SQLite and on PostgreSQL (a
throwaway server, tests/postgres.py; Debian's postgresql package).
Usage: python bench/submit.py [seconds] [connections] [--db sqlite|postgres|both]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import stack, user_key  # noqa: E402
from bench.overhead import WORKFLOW  # noqa: E402
from comfyq.workflows import published as catalogue  # noqa: E402
from comfyq.sim.process import free_port  # noqa: E402

# What `comfyq api` runs by default: 2 uvicorn processes, Flask in 1 thread each (SQLite).
SERVER = ["--workers", "2", "--loop", "uvloop", "--http", "httptools"]
CREDITS = 10_000_000
BATCH_SIZE = 100  # COMFYQ_MAX_BATCH_JOBS's default
BATCH = {"template": "txt2img", "params": {"prompt": "a lighthouse at dusk"},
         "variants": [{"seed": seed} for seed in range(BATCH_SIZE)]}
EARLIER = ("2026-11-23 (README, SQLite): metered 197 jobs/s = 0.169x the baseline of that run, p99 78 ms; "
           "another day, so compare ratios")
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


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) the server process ``pid`` and all its children used so far."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def load(url: str, seconds: int, connections: int, key: str = "", payload: dict[str, Any] | None = None,
         server: int | None = None) -> dict[str, Any]:
    """POST ``payload`` (the workflow) to ``url`` for ``seconds`` with API ``key``; return rate, p50, p99, statuses.

    ``server``: the pid of the server, whose CPU time per request is then measured too (``cpu_ms``): on a
    shared machine it moves far less than the rates, which other work's share of the cores drives.
    """
    script = Path(tempfile.mkdtemp()) / "post.lua"
    body = json.dumps(payload or {"workflow": WORKFLOW})
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.headers["Authorization"] = "Bearer {key}"\n' + STATUS_LUA)
    before = cpu_seconds(server) if server else 0.0
    try:
        out = subprocess.run([ensure_wrk(), "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                              "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    finally:
        shutil.rmtree(script.parent, ignore_errors=True)
    used = cpu_seconds(server) - before if server else 0.0

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    statuses: dict[int, int] = {}
    for status, number in re.findall(r"^status (\d+) (\d+)$", out, re.M):
        statuses[int(status)] = statuses.get(int(status), 0) + int(number)
    answered = sum(n for status, n in statuses.items() if status < 300)
    return {"cpu_ms": used * 1000 / answered if answered else 0.0,
            "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
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
        return load(f"http://127.0.0.1:{port}/v1/jobs", seconds, connections, server=proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def publish_catalogue(running: Any) -> None:
    """Publish the simulator's node catalogue, as a worker would, so validation checks every node."""
    sim_url = running.env["COMFYQ_INSTANCES"].split("=", 1)[1]
    catalogue.publish(redis.Redis.from_url(running.env["COMFYQ_REDIS_URL"]), "gpu0",
                      requests.get(f"{sim_url}/object_info", timeout=10).json())


def audit(running: Any, name: str) -> dict[str, int]:
    """Return the jobs by status, debits, balance and ledger sum of user ``name`` in the stack's database."""
    url = running.env.get("COMFYQ_DATABASE_URL") or f"sqlite:///{Path(running.env['COMFYQ_DATA_DIR']) / 'comfyq.db'}"
    engine = create_engine(url)
    with engine.connect() as conn:
        user_id, balance = conn.execute(text("SELECT id, balance FROM users WHERE name = :n"), {"n": name}).one()
        jobs = {status: n for status, n in conn.execute(
            text("SELECT status, count(*) FROM jobs WHERE user_id = :u GROUP BY status"), {"u": user_id})}
        debits = conn.execute(text("SELECT count(*), coalesce(sum(amount), 0) FROM ledger WHERE user_id = :u "
                                   "AND kind = 'debit'"), {"u": user_id}).one()
        ledger = conn.execute(text("SELECT coalesce(sum(amount), 0) FROM ledger WHERE user_id = :u"),
                              {"u": user_id}).one()
        half = conn.execute(text("SELECT count(*) FROM jobs j WHERE j.user_id = :u AND NOT EXISTS "
                                 "(SELECT 1 FROM ledger l WHERE l.job_id = j.id AND l.kind = 'debit')"),
                            {"u": user_id}).scalar()
    engine.dispose()
    return {"undebited": int(half), "jobs": sum(jobs.values()), "pending": jobs.get("pending", 0), "queued": jobs.get("queued", 0),
            "debits": debits[0], "debited": -debits[1], "balance": balance, "ledger": ledger[0]}


@contextlib.contextmanager
def database(kind: str) -> Any:
    """Yield the stack's extra env for database ``kind``: none for SQLite, a throwaway server's URL for PostgreSQL."""
    if kind == "sqlite":
        yield {}
        return
    from tests.postgres import PostgresServer

    server = PostgresServer(Path(tempfile.mkdtemp(prefix="comfyq-bench-pg-"))).start()
    try:
        yield {"COMFYQ_DATABASE_URL": server.url}
    finally:
        server.stop()


def comfyq_run(seconds: int, connections: int, name: str, role: str, credits: int, kind: str,
               batch: bool = False) -> tuple[dict[str, Any], dict[str, int]]:
    """Measure POST /v1/jobs (or /v1/batches) on a fresh stack with database ``kind`` and a new ``role`` user's key.

    Return wrk's figures (for batches, the rate in jobs/s) and the DB's.
    """
    data = ""
    try:
        with database(kind) as env, stack(sims=1, workers=False, env=env) as running:
            data = running.env["COMFYQ_DATA_DIR"]
            publish_catalogue(running)
            key = user_key(running, name, role, credits, max_waiting=0, rate_per_minute=0)
            path, payload = ("/v1/batches", BATCH) if batch else ("/v1/jobs", None)
            api = next(child.pid for child in running.children if child.name == "api")
            before = cpu_seconds(api)
            result = load(f"http://127.0.0.1:{running.api_port}{path}", seconds, connections, key, payload)
            if batch:
                result["requests"], result["rate"] = result["rate"], result["rate"] * BATCH_SIZE
            time.sleep(0.5)  # requests wrk gave up on at the end may still be committing
            stored = audit(running, name)
            result["cpu_ms"] = (cpu_seconds(api) - before) * 1000 / max(1, stored["jobs"])  # those included
            return result, stored
    finally:
        if data:
            shutil.rmtree(data, ignore_errors=True)  # the stack's data dir, once it stopped


def main(seconds: int = 10, connections: int = 8, kinds: tuple[str, ...] = ("sqlite", "postgres")) -> None:
    """Measure the baseline and the comfyq runs on each database, check the ledgers, and print the comparison."""
    base = baseline(seconds, connections)
    runs = {kind: (comfyq_run(seconds, connections, "bench-service", "service", 0, kind),
                   comfyq_run(seconds, connections, "bench-metered", "user", CREDITS, kind),
                   comfyq_run(seconds, connections, "bench-batch", "user", CREDITS, kind, batch=True))
            for kind in kinds}
    print(f"submit bench: wrk {seconds} s, {connections} connections, uvicorn {' '.join(SERVER)}, no workers; "
          f"batches of {BATCH_SIZE} (template txt2img)")
    _row("bare Flask 202 (baseline)", base, None)
    for kind, ((service, service_db), (metered, metered_db), (batched, batch_db)) in runs.items():
        print(f" {kind}:")
        _row("comfyq, service key (free)", service, service_db)
        _row("comfyq, metered user key", metered, metered_db)
        _row("comfyq, metered batches", batched, batch_db)
        print(f"  ratio metered/baseline: throughput {metered['rate'] / base['rate']:.3f}x, p99 {metered['p99']:.1f} ms"
              f" (targets: >= 0.6x, p99 <= 50 ms); service/baseline {service['rate'] / base['rate']:.3f}x")
        print(f"  CPU per request, baseline/metered: {base['cpu_ms'] / metered['cpu_ms']:.3f}x (the ratio the cores "
              "alone would allow)")
        print(f"  batches: {batched['rate']:.0f} jobs/s ({batched['requests']:.1f} batches/s; target >= 1000 jobs/s)")
        for label, m in (("metered", metered_db), ("batches", batch_db)):
            exact = m["debits"] == m["jobs"] == m["debited"] and m["balance"] == CREDITS - m["jobs"] == m["ledger"] \
                and not m["undebited"]
            print(f"  {label} ledger: {m['jobs']} jobs ({m['queued']} queued, {m['pending']} pending), {m['debits']} "
                  f"debits of {m['debited']} credits, balance {m['balance']} = {CREDITS} - {CREDITS - m['balance']}, "
                  f"ledger sum {m['ledger']}, jobs without a debit {m['undebited']}: "
                  f"{'exact' if exact else 'MISMATCH'}")
    print(f"  for reference, earlier: {EARLIER}")


def _row(name: str, r: dict[str, Any], stored: dict[str, int] | None) -> None:
    """Print one run's line: rate, latency, answers by status, jobs stored."""
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(r["statuses"].items()))
    print(f"  {name:<27} {r['rate']:8.0f} jobs/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
          f"server CPU {r['cpu_ms']:5.2f} ms/job  "
          f"non-2xx {r['errors']}  socket errors {r['socket_errors']}  ({codes})"
          + (f"  jobs stored {stored['jobs']}" if stored else ""))
    for body in r["refusals"]:
        print(f"    first refusal: {body[:300]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", nargs="?", type=int, default=10)
    parser.add_argument("connections", nargs="?", type=int, default=8)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    main(args.seconds, args.connections, ("sqlite", "postgres") if args.db == "both" else (args.db,))
