"""Overhead per job: the same trivial workflow straight on a simulator vs through comfyq.

Direct (the baseline): POST /prompt on an open websocket, wait for `executing null`,
read /history, download the image through /view. Through comfyq: POST /v1/jobs,
wait for the job's `finished` event (which names its outputs), download the output. Runs
alternate so both see the same machine state.

Usage: python bench/overhead.py [N] [--live] [--profile] [--cprofile] [--against TREE] [--tree TREE]

``--live``: each job also names a webhook (a receiver in this process) and the
bench follows it on its own event stream (GET /v1/jobs/<id>/events) instead of
Redis pub/sub: submit → finished event on the stream → output downloaded. The
bench waits for each webhook, outside the timed run, before the next run.
``--profile`` (implies ``--live``): the stack's processes run with bench/tracing's
sitecustomize, which logs when each step of a job begins and ends; the bench
prints the median time of each phase (bench/phases.py). ``--cprofile`` adds a
cProfile of the GPU worker's runs (top functions by own and cumulative time).
``--against TREE``: a second stack runs another checkout's comfyq (say, the
main branch's) and its runs alternate with the others', so both differences
come from the same minutes of a machine whose speed drifts. ``--tree TREE``:
the measured stack runs that checkout instead of this one (a profile of it).
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import psutil
import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import phases  # noqa: E402
from bench.harness import service_key, stack, summary  # noqa: E402
from comfyq.client import sse  # noqa: E402
from comfyq.comfy import ComfyClient  # noqa: E402
from comfyq.events.log import CHANNELS, FINAL_TYPES, parse  # noqa: E402

WORKFLOW = {
    "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "3": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["2", 2]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "bench"}},
}


def unique(seed: int) -> dict:
    """Return the workflow with a different prefix, so no run is a cache hit."""
    graph = json.loads(json.dumps(WORKFLOW))
    graph["4"]["inputs"]["filename_prefix"] = f"bench{seed}"
    return graph


def direct(client: ComfyClient, seed: int) -> float:
    """Run once straight on the simulator; return the seconds taken."""
    start = time.perf_counter()
    prompt_id = str(uuid.uuid4())
    client.queue_prompt(unique(seed), prompt_id)
    entry = client.follow(prompt_id)
    image = entry["outputs"]["4"]["images"][0]
    client.download(image["filename"], image["subfolder"], image["type"])
    return time.perf_counter() - start


def through_comfyq(http: requests.Session, api: str, events: redis.client.PubSub, seed: int) -> float:
    """Run once through the API and a worker; return the seconds taken."""
    start = time.perf_counter()
    job = http.post(f"{api}/v1/jobs", json={"workflow": unique(seed)}, timeout=10).json()
    while True:
        message = events.get_message(timeout=10)
        if message is None:
            raise RuntimeError(f"no finished event for {job['id']}")
        if message["type"] == "pmessage":
            event = json.loads(parse(message["data"])[2])
            if event["job_id"] == job["id"] and event["type"] in FINAL_TYPES:
                break
    assert event["type"] == "succeeded", event
    http.get(f"{api}/v1/jobs/{job['id']}/outputs/{event['outputs'][0]['name']}", timeout=10).raise_for_status()
    return time.perf_counter() - start


class Receiver:
    """A webhook receiver in the bench process: when each job's final delivery arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                now = time.time()
                self.send_response(204)
                self.end_headers()
                if body.get("event") in FINAL_TYPES:
                    with receiver.cond:
                        receiver.arrived[body["job_id"]] = now
                        receiver.cond.notify_all()

            def log_message(self, *args: object) -> None:
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, job_id: str, timeout: float = 10.0) -> float:
        """Return when the final webhook of ``job_id`` arrived (waiting for it)."""
        with self.cond:
            if not self.cond.wait_for(lambda: job_id in self.arrived, timeout):
                raise RuntimeError(f"no webhook for {job_id}")
            return self.arrived[job_id]

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()


def through_comfyq_live(http: requests.Session, api: str, hooks: Receiver, seed: int) -> tuple[float, dict]:
    """Run once with a webhook and the job's event stream; return the seconds taken and the client's marks."""
    marks: dict[str, float] = {"t0": time.time()}
    start = time.perf_counter()
    job = http.post(f"{api}/v1/jobs", json={"workflow": unique(seed), "webhook_url": hooks.url}, timeout=10).json()
    marks["submit answered"] = time.time()
    final = None
    with http.get(f"{api}/v1/jobs/{job['id']}/events", stream=True, timeout=10) as stream:
        stream.raise_for_status()
        marks["stream open"] = time.time()
        for event in sse.parse(stream.iter_lines(chunk_size=None, decode_unicode=True)):
            if event.type in FINAL_TYPES:
                final = event.data
                break
    marks["finished event on the stream"] = time.time()
    assert final is not None and final["type"] == "succeeded", final
    http.get(f"{api}/v1/jobs/{job['id']}/outputs/{final['outputs'][0]['name']}", timeout=10).raise_for_status()
    took = time.perf_counter() - start
    marks["output downloaded"] = time.time()
    marks["webhook received"] = hooks.wait(job["id"])
    marks["job"] = job["id"]  # type: ignore[assignment]
    return took, marks


def cpu_by_process() -> dict[str, tuple[int, float]]:
    """Return the CPU seconds each process under this one has used so far, by pid and command line."""
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            times, line = child.cpu_times(), " ".join(child.cmdline()[1:4])
        except psutil.Error:
            continue
        found[f"{child.pid} {line}"[:60]] = (child.pid, times.user + times.system)
    found["bench (this process)"] = (os.getpid(), sum(psutil.Process().cpu_times()[:2]))
    return found


def tracing_env(trace_dir: str, cprofile: bool) -> dict[str, str]:
    """Return the environment that makes the stack's processes trace (bench/tracing/sitecustomize.py)."""
    env = {"BENCH_TRACE_DIR": trace_dir}
    if cprofile:
        env["BENCH_CPROFILE"] = trace_dir
    return env


@contextlib.contextmanager
def comfyq_of(tree: str, env: dict[str, str], hooks: Receiver | None) -> Iterator[Callable[[int], float]]:
    """Start a stack whose processes run the comfyq of ``tree``; yield what runs one job through it."""
    saved = os.environ.get("PYTHONPATH")
    paths = [str(Path(__file__).resolve().parent / "tracing")] if "BENCH_TRACE_DIR" in env else []
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, tree])  # the stack's processes copy it as they start
    try:
        with stack(sims=1, env=env) as running:
            api = f"http://127.0.0.1:{running.api_port}"
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {service_key(running)}"
            events = redis.Redis.from_url(running.env["COMFYQ_REDIS_URL"]).pubsub()
            events.psubscribe(CHANNELS)
            running.marks = []  # type: ignore[attr-defined]

            def once(seed: int) -> float:
                if hooks is None:
                    return through_comfyq(http, api, events, seed)
                took, run_marks = through_comfyq_live(http, api, hooks, seed)
                running.marks.append(run_marks)  # type: ignore[attr-defined]
                return took
            once.running = running  # type: ignore[attr-defined]
            yield once
    finally:
        for name in ("BENCH_TRACE_DIR", "BENCH_CPROFILE"):  # the stack set them; they are no COMFYQ_ setting
            os.environ.pop(name, None)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def main(n: int = 200, live: bool = False, profile: bool = False, cprofile: bool = False,
         against: str | None = None, tree: str | None = None) -> None:
    """Measure and print both distributions and their difference (and those of another tree's comfyq)."""
    live = live or profile or cprofile
    here = os.path.abspath(tree) if tree else str(Path(__file__).resolve().parent.parent)
    os.chdir(tempfile.gettempdir())  # ``python -m comfyq`` imports from its working directory first
    trace_dir = tempfile.mkdtemp(prefix="comfyq-trace-") if profile or cprofile else None
    env = {"COMFYQ_WEBHOOK_ALLOW": "127.0.0.1"} if live else {}
    hooks = Receiver() if live else None
    try:
        with contextlib.ExitStack() as started:
            ours = started.enter_context(comfyq_of(here, {**env, **(tracing_env(trace_dir, cprofile)
                                                                     if trace_dir else {})}, hooks))
            theirs = started.enter_context(comfyq_of(os.path.abspath(against), {**env, **(
                tracing_env(trace_dir, False) if trace_dir else {})}, hooks)) if against else None
            running = ours.running  # type: ignore[attr-defined]
            client = ComfyClient(running.env["COMFYQ_INSTANCES"].split("=", 1)[1])
            client.connect()
            for i in range(10):  # warm up every path
                direct(client, -i - 1)
                ours(-i - 100)
                if theirs:
                    theirs(-i - 200)
            running.marks.clear()
            other_marks = theirs.running.marks if theirs else []  # type: ignore[attr-defined]
            other_marks.clear()
            base, mine, other = [], [], []
            cpu_before = cpu_by_process()
            for i in range(n):
                base.append(direct(client, i))
                mine.append(ours(n + i))
                if theirs:
                    other.append(theirs(2 * n + i))
            cpu_after = cpu_by_process()
            if trace_dir:
                for run_marks in running.marks:
                    run_marks.update(phases.on_instance(client, run_marks["job"]))
                if theirs:
                    with ComfyClient(theirs.running.env["COMFYQ_INSTANCES"].split("=", 1)[1]) as their_sim:  # type: ignore[attr-defined]
                        for run_marks in other_marks:
                            run_marks.update(phases.on_instance(their_sim, run_marks["job"]))
            client.close()
    finally:
        if hooks is not None:
            hooks.close()
    how = "webhook + event stream per job" if live else "Redis pub/sub"
    print(f"overhead bench, N={n}, trivial workflow (4 nodes, one 64x64 PNG), runs alternating, comfyq: {how}")
    print(f"  direct on the simulator (baseline): {summary(base)}")
    rows = [(tree or "this tree", mine)] + ([(f"{against}", other)] if against else [])
    for name, ours_runs in rows:
        extra = [b - a for a, b in zip(base, ours_runs)]
        print(f"  through comfyq ({name}):")
        print(f"    end to end:                       {summary(ours_runs)}")
        print(f"    ratio comfyq/direct:              median {statistics.median(ours_runs) / statistics.median(base):.2f}x")
        print(f"    comfyq minus direct, per run:     {summary(extra)}  (target: median <= 25 ms, p99 <= 60 ms)")
    print()
    print(f"CPU per run (ms, user+system, all runs of the loop){' — both stacks' if against else ''}")
    for name, (first_seen, spent) in sorted(cpu_after.items()):
        before = cpu_before.get(name, (None, 0.0))[1]
        print(f"  {name:60} {(spent - before) / n * 1000:7.2f}")
    if trace_dir:
        traced = phases.load(trace_dir)
        for name, marks in [(tree or "this tree", running.marks)] + ([(against, other_marks)] if against else []):
            print()
            print(f"{name}: {phases.table(marks, traced)}")
        if cprofile:
            print(phases.cprofile(trace_dir))


if __name__ == "__main__":
    args = sys.argv[1:]
    against_tree = args[args.index("--against") + 1] if "--against" in args else None
    run_tree = args[args.index("--tree") + 1] if "--tree" in args else None
    flags = {arg for arg in args if arg.startswith("--")}
    numbers = [arg for arg in args if arg.isdigit()]
    main(int(numbers[0]) if numbers else 200, live="--live" in flags, profile="--profile" in flags,
         cprofile="--cprofile" in flags, against=against_tree, tree=run_tree)
