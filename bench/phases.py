"""Where a job's time goes: bench/overhead.py --profile's phase table, from bench/tracing's logs.

Each comfyq run has the client's marks (submit, stream, download, webhook), the
simulator's own execution start and end (its history's timestamps, in ms) and
the spans the stack's processes traced (bench/tracing/sitecustomize.py). Every
phase is a moment per run; the table gives its median offset from the submit
and the median step from the phase before it.
"""
from __future__ import annotations

import glob
import json
import os
import pstats
import statistics
from collections import defaultdict
from io import StringIO
from typing import Any, Callable

from comfyq.comfy import ComfyClient

Spans = dict[str, list[dict[str, Any]]]  # a job's traced spans, by name, in the order they began

# (label, how to find the moment in a run's marks and spans)
PHASES: list[tuple[str, Callable[[dict[str, Any], Spans], float | None]]] = []


def phase(label: str) -> Callable[[Callable[[dict[str, Any], Spans], float | None]], Any]:
    """Declare a phase of the table, in path order."""
    def add(fn: Callable[[dict[str, Any], Spans], float | None]) -> Any:
        PHASES.append((label, fn))
        return fn
    return add


def first(spans: Spans, what: str, end: bool = True) -> float | None:
    """Return the end (or start) of the first span named ``what``."""
    found = spans.get(what)
    return (found[0]["t1"] if end else found[0]["t0"]) if found else None


phase("broker publish done (API)")(lambda m, s: first(s, "broker.enqueue"))
phase("submit answered (client)")(lambda m, s: m["submit answered"])
phase("stream open (client)")(lambda m, s: m["stream open"])
phase("message received (worker)")(lambda m, s: first(s, "celery.received.comfyq.run_job"))
phase("task starts (pool child)")(lambda m, s: first(s, "celery.prerun.comfyq.run_job"))
phase("running committed")(lambda m, s: first(s, "transition.running"))
phase("prompt placed (POST /prompt)")(lambda m, s: first(s, "comfy.queue_prompt"))
phase("execution start (simulator)")(lambda m, s: m.get("execution_start"))
phase("execution end (simulator)")(lambda m, s: m.get("execution_success"))
phase("end seen (follow returns)")(lambda m, s: first(s, "comfy.follow"))
phase("outputs stored (download+sha256)")(lambda m, s: first(s, "worker.download_outputs"))
phase("finished event logged (Redis)")(lambda m, s: first(s, "event.succeeded"))
phase("after-commit actions done")(lambda m, s: first(s, "transition.succeeded"))
phase("finished event on the stream")(lambda m, s: m["finished event on the stream"])
phase("output downloaded (client)")(lambda m, s: m["output downloaded"])
phase("webhook POST starts")(lambda m, s: first(s, "webhook.post", end=False))
phase("webhook received")(lambda m, s: m["webhook received"])


def on_instance(client: ComfyClient, job_id: str) -> dict[str, float]:
    """Return when the simulator says the job's prompt started and ended (its history's messages)."""
    entry = client.history(job_id) or {}
    found = {}
    for name, data in (entry.get("status") or {}).get("messages") or ():
        if name in ("execution_start", "execution_success") and "timestamp" in data:
            found[name] = data["timestamp"] / 1000
    return found


def load(trace_dir: str) -> dict[str, Spans]:
    """Return every traced span, by job and name."""
    jobs: dict[str, Spans] = defaultdict(lambda: defaultdict(list))
    for path in glob.glob(os.path.join(trace_dir, "trace-*.jsonl")):
        with open(path) as fh:
            for line in fh:
                try:
                    span = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a process's end
                if span["job"]:
                    jobs[span["job"]][span["what"]].append(span)
    for spans in jobs.values():
        for found in spans.values():
            found.sort(key=lambda span: span["t0"])
    return jobs


def ms(values: list[float]) -> str:
    """Return the median of seconds as milliseconds."""
    return f"{statistics.median(values) * 1000:8.1f}" if values else "       -"


def table(marks: list[dict[str, Any]], traced: dict[str, Spans]) -> str:
    """Return the phase table and the traced spans' costs, medians over the runs."""
    offsets: dict[str, list[float]] = defaultdict(list)
    steps: dict[str, list[float]] = defaultdict(list)
    for run in marks:
        spans = traced.get(run["job"], {})
        before = run["t0"]
        for label, find in PHASES:
            moment = find(run, spans)
            if moment is None:
                continue
            offsets[label].append(moment - run["t0"])
            steps[label].append(moment - before)
            before = moment
    lines = [f"where the time goes, N={len(marks)} comfyq runs (median ms from the submit; step from the row above)",
             f"  {'phase':36} {'at':>8} {'step':>8}"]
    lines += [f"  {label:36} {ms(offsets[label])} {ms(steps[label])}" for label, _ in PHASES]
    totals: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, list[int]] = defaultdict(list)
    for run in marks:
        for what, found in traced.get(run["job"], {}).items():
            totals[what].append(sum(span["t1"] - span["t0"] for span in found))
            counts[what].append(len(found))
    lines += ["", "traced spans per job (median total ms, calls)", f"  {'span':44} {'ms':>8} {'calls':>5}"]
    lines += [f"  {what:44} {ms(totals[what])} {statistics.median(counts[what]):5.0f}"
              for what in sorted(totals, key=lambda w: -statistics.median(totals[w]))]
    return "\n".join(lines)


def cprofile(trace_dir: str, top: int = 25) -> str:
    """Return the CPU profiles of the worker's runs, the webhook attempts and the API's requests: top functions."""
    out = StringIO()
    for kind in ("worker", "webhooks", "api"):
        files = glob.glob(os.path.join(trace_dir, f"{kind}-*.prof"))
        if not files:
            out.write(f"no {kind} profile was written\n")
            continue
        out.write(f"==== {kind}: CPU time (s) over all runs, {len(files)} process(es)\n")
        stats = pstats.Stats(*files, stream=out)
        stats.strip_dirs().sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()
