"""Throughput against the number of instances: N simulators, each with its own GPU worker, jobs of T = 0.5 s.

For each N a fresh stack (harness.stack) without workers gets enough work to keep every instance busy for
about ``SECONDS`` (at least 6 jobs per instance), submitted with the key of a service allowed two jobs per
instance at once (the running one and the next, which the worker holds); then the N GPU workers start.
The throughput is the jobs that end between the moment the last instance starts its first job and the last
end, over that time, against the ideal N/T. Printed per N: the ratio, an instance's time per job beyond T, the median gap on
an instance between one job's end and its next job's start (as the event log saw them), the idle stack's CPU,
and the CPU each process kind used per job (what competes for the 2 cores).
Usage: python bench/scaling.py [N ...]   (default: 1 2 4 8 16)
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import stack, user_key  # noqa: E402
from comfyq.cli.stack import Stack  # noqa: E402
from comfyq.events.log import CHANNELS, FINAL_TYPES, parse  # noqa: E402

T = 0.5  # seconds a job takes on its instance
SECONDS = 20.0  # of ideal work per N
IDLE_WINDOW = 5.0  # seconds the ready, idle stack is watched before the jobs come
SUBMITTERS = 4  # threads submitting
WORKFLOW = {
    "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "3": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["2", 2]}},
    # The one node that runs every time (the others are cached): it takes T.
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "scale"},
          "_meta": {"sim": {"node_seconds": T}}},
}


def graph(seed: int) -> dict:
    """Return the workflow with its own prefix, so no run is a cache hit."""
    copy = json.loads(json.dumps(WORKFLOW))
    copy["4"]["inputs"]["filename_prefix"] = f"scale{seed}"
    return copy


class Watch:
    """Each job's start (and instance) and end, as the event channels carry them."""

    def __init__(self, redis_url: str) -> None:
        self.started: dict[str, tuple[float, str]] = {}
        self.ended: dict[str, tuple[float, str]] = {}
        self.done = threading.Condition()
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(CHANNELS)
        threading.Thread(target=self.listen, daemon=True).start()

    def listen(self) -> None:
        """Record starts and ends (each event comes on the job's and the user's channel: the first counts)."""
        try:
            for message in self.pubsub.listen():
                if message is None or message["type"] != "pmessage":
                    continue
                now = time.monotonic()
                event = json.loads(parse(message["data"])[2])
                job = event.get("job_id")
                if event.get("type") == "started" and job not in self.started:
                    self.started[job] = (now, event.get("instance", "?"))
                elif event.get("type") in FINAL_TYPES and job not in self.ended:
                    with self.done:
                        self.ended[job] = (now, event["type"])
                        self.done.notify_all()
        except redis.ConnectionError:
            pass

    def wait(self, jobs: int, timeout: float) -> None:
        """Block until ``jobs`` jobs have ended."""
        deadline = time.monotonic() + timeout
        with self.done:
            while len(self.ended) < jobs:
                if not self.done.wait(max(0.0, deadline - time.monotonic())):
                    raise RuntimeError(f"only {len(self.ended)} of {jobs} jobs ended in {timeout:g} s")


def family(running: Stack) -> dict[str, list[psutil.Process]]:
    """Return the stack's processes by kind: api, worker (with pool children), sim, redis, other."""
    kinds: dict[str, list[psutil.Process]] = {}
    for child in running.children:
        if child.pid is None:
            continue
        kind = "worker" if child.name.startswith("gpu") else "sim" if child.name.startswith("sim") else child.name
        leader = psutil.Process(child.pid)
        kinds.setdefault(kind, []).extend([leader, *leader.children(recursive=True)])
    return kinds


def cpu(kinds: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """Return the CPU seconds (user + system) used so far by each kind."""
    used = {}
    for kind, procs in kinds.items():
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        used[kind] = total
    return used


def wait_ready(running: Stack, n: int, timeout: float = 300) -> float:
    """Block until every worker reports its instance reachable; return when (monotonic)."""
    r = redis.Redis.from_url(running.env["COMFYQ_REDIS_URL"])
    deadline = time.monotonic() + timeout
    while sum(r.hget(f"comfyq:instance:gpu{i}", "reachable") == b"1" for i in range(n)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not get ready")
        time.sleep(0.05)
    return time.monotonic()


def run(n: int) -> dict[str, float]:
    """Measure one N: submit every job to a stack without workers, then start them; return the figures."""
    jobs = max(6 * n, round(SECONDS * n / T))
    env = {"COMFYQ_MAX_ADMITTED": str(3 * n), "COMFYQ_MAX_WAITING_PER_USER": "0"}
    with stack(sims=n, workers=False, env=env) as running:
        http = requests.Session()
        # A service allowed two jobs per instance: the running one and the next, which the worker holds and
        # places (COMFYQ_LOOKAHEAD). With one per instance (the default cap) a lone user never has a next job.
        key = user_key(running, "bench", role="service", max_running=2 * n, max_waiting=0, rate_per_minute=0)
        http.headers["Authorization"] = f"Bearer {key}"
        api = f"http://127.0.0.1:{running.api_port}"
        watch = Watch(running.env["COMFYQ_REDIS_URL"])

        def submit(i: int) -> None:
            """Submit job i."""
            answer = http.post(f"{api}/v1/jobs", json={"workflow": graph(i)}, timeout=30)
            if not answer.ok:
                raise RuntimeError(f"submission refused: {answer.status_code} {answer.text[:300]}")

        with ThreadPoolExecutor(SUBMITTERS) as pool:  # all queued before any worker runs: the API is out of it
            list(pool.map(submit, range(jobs)))
        load_before = os.getloadavg()[0]
        for i in range(n):
            running.comfyq(f"gpu{i}", "worker", f"gpu{i}")
        ready = wait_ready(running, n)  # the window opens when the last worker is ready
        kinds = family(running)
        before = cpu(kinds)
        watch.wait(jobs, timeout=SECONDS * 10 + 120)
        used = {k: v - before.get(k, 0.0) for k, v in cpu(kinds).items()}
        time.sleep(IDLE_WINDOW / 2)
        rested = cpu(kinds)
        time.sleep(IDLE_WINDOW)  # what the idle stack burns: heartbeats, leases, health probes
        idle_cpu = sum(cpu(kinds).values()) - sum(rested.values())
    last = max(t for t, _ in watch.ended.values())
    firsts: dict[str, float] = {}
    for t, instance in watch.started.values():
        firsts[instance] = min(t, firsts.get(instance, t))
    ready = max(ready, *firsts.values())  # from when every instance has run its first job, all are busy
    in_window = sum(t >= ready for t, _ in watch.ended.values())
    failed = sum(kind != "succeeded" for _, kind in watch.ended.values())
    throughput = in_window / (last - ready)
    gaps = []
    by_instance: dict[str, list[str]] = {}
    for job, (_, instance) in sorted(watch.started.items(), key=lambda item: item[1][0]):
        by_instance.setdefault(instance, []).append(job)
    for order in by_instance.values():
        gaps += [watch.started[b][0] - watch.ended[a][0] for a, b in zip(order, order[1:])
                 if a in watch.ended and watch.ended[a][0] >= ready]
    return {"n": n, "jobs": jobs, "in_window": in_window, "failed": failed, "seconds": last - ready,
            "throughput": throughput, "idle_cpu_pct": idle_cpu / IDLE_WINDOW * 100, "load": load_before,
            "ideal": n / T, "ratio": throughput / (n / T), "idle_ms": (n / throughput - T) * 1000,
            "gap_ms": statistics.median(gaps) * 1000 if gaps else 0.0,
            **{f"cpu_{k}_ms": v / in_window * 1000 for k, v in used.items()}}


def main(ns: list[int]) -> None:
    """Run every N and print the table."""
    rows = []
    for n in ns:
        row = run(n)
        rows.append(row)
        print(json.dumps(row), flush=True)
    kinds = sorted({k for row in rows for k in row if k.startswith("cpu_")})
    print(f"\nT = {T} s; ideal = N/T jobs/s; idle = N/throughput - T, an instance's time per job beyond T; "
          "gap = median time on an instance from a job's end event to its next job's start event")
    print("idle CPU = the stack's CPU use while ready and idle (% of one core); load = 1-min load average before "
          "the jobs (the machine is shared); CPU per job = each kind's CPU over the run / jobs")
    header = f"{'N':>3} {'jobs':>5} {'jobs/s':>7} {'ideal':>6} {'ratio':>6} {'idle ms':>7} {'gap ms':>7} " \
        f"{'idle CPU':>8} {'load':>5} " + \
        " ".join(f"{k[4:-3] + ' ms/job':>15}" for k in kinds)
    print(header)
    for row in rows:
        print(f"{row['n']:>3} {row['in_window']:>5} {row['throughput']:7.2f} {row['ideal']:6.1f} {row['ratio']:6.3f} "
              f"{row['idle_ms']:7.1f} {row['gap_ms']:7.1f} {row['idle_cpu_pct']:7.0f}% "
              f"{row['load']:5.1f} " + " ".join(f"{row.get(k, 0.0):15.1f}" for k in kinds)
              + (f"  ({row['failed']} failed)" if row["failed"] else ""))
    print(f"target ratio >= 0.95 at every N: {'met' if all(r['ratio'] >= 0.95 for r in rows) else 'missed'}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 2, 4, 8, 16])
