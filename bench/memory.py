"""Memory of the embedded stack: ``comfyq up`` with 2 simulators, per process, after 1,000 and 10,000 jobs.

Starts ``python -m comfyq up`` on free ports in a fresh data dir (Flower included), runs trivial jobs (a
simulator job takes no time) through the API with a service key, and at each checkpoint prints every
process of the stack (its role, RSS, and PSS/USS where /proc/<pid>/smaps_rollup is readable), comfyq's
total (the simulators and redis-server are printed but not counted: they stand for ComfyUI and Redis),
and the ratios to the targets. Usage: python bench/memory.py [CHECKPOINTS...]   (default: 1000 10000)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from comfyq.events.log import CHANNELS, FINAL_TYPES, parse  # noqa: E402
from comfyq.sim.process import free_port  # noqa: E402

MB = 2 ** 20
# MB of RSS: the whole stack, a GPU worker with its pool child, an API process.
TARGETS = {"stack": 700, "worker": 150, "api": 80}
WINDOW = 64  # jobs in flight at once
WORKFLOW = {
    "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "3": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["2", 2]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "mem"}},
}


def graph(seed: int) -> dict:
    """Return the workflow with its own prefix, so no run is a cache hit."""
    copy = json.loads(json.dumps(WORKFLOW))
    copy["4"]["inputs"]["filename_prefix"] = f"mem{seed}"
    return copy


def memory(proc: psutil.Process) -> tuple[int, int | None, int | None]:
    """Return a process's RSS, PSS and USS in bytes (PSS/USS None where smaps cannot be read)."""
    rss = proc.memory_info().rss
    try:
        full = proc.memory_full_info()
        return rss, getattr(full, "pss", None), full.uss
    except (psutil.AccessDenied, AttributeError):
        return rss, None, None


def processes(up: psutil.Process, pid_file: Path) -> list[tuple[str, psutil.Process]]:
    """Return every process of the stack with a label: up itself, each child and its descendants."""
    found: list[tuple[str, psutil.Process]] = [("up (supervisor)", up)]
    children = json.loads(pid_file.read_text())["children"]
    for name, pid in children.items():
        if pid is None:
            continue
        leader = psutil.Process(pid)
        found.append((name, leader))
        for i, sub in enumerate(leader.children(recursive=True)):
            found.append((f"{name} child {i + 1}", sub))
    return found


def table(up: psutil.Process, pid_file: Path, jobs: int) -> dict[str, float]:
    """Print one checkpoint's table; return comfyq's totals and the per-role figures in MB."""
    rows = []
    for label, proc in processes(up, pid_file):
        try:
            rss, pss, uss = memory(proc)
        except psutil.Error:
            continue
        rows.append((label, proc.pid, rss / MB, pss / MB if pss is not None else None,
                     uss / MB if uss is not None else None))
    print(f"\nafter {jobs} jobs")
    print(f"{'process':<22} {'pid':>7} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8}")
    ours = [r for r in rows if not r[0].startswith(("sim", "redis"))]
    for label, pid, rss, pss, uss in rows:
        note = "" if (label, pid, rss, pss, uss) in ours else "   (not comfyq's: excluded)"
        fmt = lambda v: f"{v:8.1f}" if v is not None else "       -"  # noqa: E731
        print(f"{label:<22} {pid:>7} {rss:8.1f} {fmt(pss)} {fmt(uss)}{note}")
    total = {k: sum(r[i] or 0 for r in ours) for k, i in (("rss", 2), ("pss", 3), ("uss", 4))}
    print(f"{'comfyq total':<22} {'':>7} {total['rss']:8.1f} {total['pss']:8.1f} {total['uss']:8.1f}")
    figures = {"stack": total["rss"], "stack_pss": total["pss"]}
    workers = [sum(r[2] for r in ours if r[0] == name or r[0].startswith(f"{name} child"))
               for name in ("gpu0", "gpu1")]
    figures["worker"] = max(workers)
    api_rows = [r[2] for r in ours if r[0].startswith("api")]
    figures["api"] = max(api_rows[1:] or api_rows)  # uvicorn's worker processes serve; its parent only supervises
    for key in ("stack", "worker", "api"):
        ratio = figures[key] / TARGETS[key]
        print(f"{key:<8} {figures[key]:7.1f} MB RSS vs target {TARGETS[key]} MB: ratio {ratio:.2f}"
              f" ({'met' if ratio <= 1 else 'missed'})")
    return figures


class Runner:
    """Submit trivial jobs through the API, WINDOW at a time, counting their ends from the event channels."""

    def __init__(self, api: str, key: str, redis_url: str) -> None:
        self.api, self.http = api, requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"
        self.ended: set[str] = set()
        self.failed = 0
        self.changed = threading.Condition()
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(CHANNELS)
        threading.Thread(target=self.guarded_listen, daemon=True).start()
        self.sent = 0

    def guarded_listen(self) -> None:
        """Listen until the stack's Redis goes away at the end."""
        try:
            self.listen()
        except redis.ConnectionError:
            pass

    def listen(self) -> None:
        """Count each job's final event once."""
        for message in self.pubsub.listen():
            if message is None or message["type"] != "pmessage":
                continue
            event = json.loads(parse(message["data"])[2])
            if event.get("type") in FINAL_TYPES and event["job_id"] not in self.ended:
                with self.changed:
                    self.ended.add(event["job_id"])
                    self.failed += event["type"] != "succeeded"
                    self.changed.notify_all()

    def run_until(self, total: int) -> float:
        """Submit until ``total`` jobs have ended; return the seconds taken."""
        start = time.monotonic()
        while True:
            with self.changed:
                while self.sent - len(self.ended) >= WINDOW and len(self.ended) < total:
                    self.changed.wait(30)
                if len(self.ended) >= total:
                    return time.monotonic() - start
            if self.sent < total:
                answer = self.http.post(f"{self.api}/v1/jobs", json={"workflow": graph(self.sent)}, timeout=30)
                if not answer.ok:
                    raise RuntimeError(f"submission refused: {answer.status_code} {answer.text[:500]}")
                self.sent += 1
            else:
                with self.changed:
                    self.changed.wait(1)


def main(checkpoints: list[int]) -> None:
    """Start the stack, run jobs to each checkpoint and print the memory tables."""
    data = tempfile.mkdtemp(prefix="comfyq-mem-")
    ports = {name: free_port() for name in ("api", "flower", "redis", "sim0", "sim1")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYQ_")}
    env.update(COMFYQ_DATA_DIR=data, COMFYQ_MAX_ADMITTED="64", PYTHONUNBUFFERED="1")
    log = open(os.path.join(data, "up.log"), "w")
    up = subprocess.Popen([sys.executable, "-m", "comfyq", "up", "--port", str(ports["api"]),
                           "--flower-port", str(ports["flower"]), "--redis-port", str(ports["redis"]),
                           "--sim-ports", f"{ports['sim0']},{ports['sim1']}"],
                          env=env, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{ports['api']}"
    try:
        deadline = time.monotonic() + 120
        while "API http://" not in Path(data, "up.log").read_text():
            if up.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"comfyq up did not start: {Path(data, 'up.log').read_text()[-3000:]}")
            time.sleep(0.5)
        env["COMFYQ_REDIS_URL"] = f"redis://127.0.0.1:{ports['redis']}/0"
        made = subprocess.run([sys.executable, "-m", "comfyq", "users", "create", "bench", "--role", "service",
                               "--level", "expert"], env=env, capture_output=True, text=True, check=True)
        runner = Runner(api, made.stdout.split()[-1], env["COMFYQ_REDIS_URL"])
        runner.run_until(20)  # warm up
        results = {}
        for jobs in checkpoints:
            took = runner.run_until(jobs)
            time.sleep(3)  # let the last ends settle (Flower's and the webhooks worker's events)
            print(f"\n{jobs} jobs done ({runner.failed} not succeeded), {took:.0f} s for this stretch")
            results[jobs] = table(psutil.Process(up.pid), Path(data, "up", "pids.json"), jobs)
        if len(checkpoints) > 1:
            first, last = results[checkpoints[0]], results[checkpoints[-1]]
            for key in ("stack", "worker", "api"):
                growth = last[key] / first[key] - 1
                print(f"{key:<8} from {checkpoints[0]} to {checkpoints[-1]} jobs: {first[key]:.1f} → {last[key]:.1f} MB, "
                      f"{growth:+.1%} ({'flat' if abs(growth) <= 0.10 else 'NOT flat'} within 10%)")
    finally:
        up.terminate()
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
