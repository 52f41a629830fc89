"""Fair share on a class sharing two GPUs: a backlog against newcomers, and a cap of 2 with 10 students × 3 jobs.

What: a real stack (``comfyq up``'s processes: API, two workers, two simulators),
every job taking about T = 1.0 s on a simulator (4 steps of 0.25 s).
1. hog: student "hog" submits 100 jobs; 0.5 s later 29 classmates submit one
   each (at once, one thread each). From the first classmate's submission to the
   last classmate's start: the start order (H: hog, n: a classmate), hog jobs
   started in it, Jain's fairness index of the GPU time the 30 users got in it,
   each classmate's wait against ceil(k/2)·T (k: its place in submission order),
   and each classmate's reported queue_position (at submission) against the
   jobs that actually started before it. Default global cap (two per GPU).
2. cap 2 (COMFYQ_MAX_ADMITTED=2): 10 students submit 3 jobs each, all at once
   (one thread each) and one student after another; the start order (a letter
   per student), and whether every student's first job started before any
   student's third.
Acceptance: no hog job starts in the window but those admitted before it, Jain
>= 0.95, every wait <= ceil(k/2)·T + T; every first before any third; every
|reported - actual| <= 1 for a classmate's position.
Usage: python bench/fairness.py [--runs 1] [--classmates 29] [--backlog 100]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import stack  # noqa: E402
from comfyq.sim.testing import txt2img, with_node_knobs  # noqa: E402

STEP = 0.25  # seconds a simulated step takes: 4 steps, about 1 s a job


def workflow(seed: int) -> dict[str, Any]:
    """A raw text-to-image graph that takes about 1 s on a simulator."""
    return with_node_knobs(txt2img(seed=seed, steps=4), "3", step_seconds=STEP)


def keys(env: dict[str, str], names: list[str]) -> dict[str, str]:
    """Create users (role ``user``, 10,000 credits) in the stack's database; return their API keys."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from comfyq import create_app
        from comfyq.accounts import credits, users

        app = create_app()
        found = {}
        with app.app_context():
            for name in names:
                user = users.create_user(name, "user", "expert")
                credits.change(user, 10_000, "grant", "bench", None)
                found[name] = users.issue_key(user)[1]
        return found
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Api:
    """A few calls of the stack's API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def submit(self, key: str, seed: int) -> dict[str, Any]:
        answer = requests.post(f"{self.url}/v1/jobs", json={"workflow": workflow(seed)},
                               headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert answer.status_code == 202, answer.text
        return answer.json()

    def get(self, key: str, job_id: str) -> dict[str, Any]:
        return requests.get(f"{self.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"},
                            timeout=30).json()

    def cancel(self, key: str, job_id: str) -> None:
        requests.post(f"{self.url}/v1/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def wait(self, key: str, job_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(key, job_id)
            if job["status"] in ("succeeded", "failed", "cancelled", "timed_out") or time.monotonic() > deadline:
                return job
            time.sleep(0.1)


def at(stamp: str | None) -> float | None:
    """An API timestamp as seconds since the epoch."""
    return None if stamp is None else datetime.fromisoformat(stamp).astimezone(timezone.utc).timestamp()


def together(calls: list[Any]) -> list[Any]:
    """Run the calls at once, one thread each; return their answers in order."""
    answers: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        answers[n] = calls[n]()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def jain(values: list[float]) -> float:
    """Jain's fairness index of ``values``."""
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if any(values) else 1.0


def hog_scenario(classmates: int, backlog: int) -> dict[str, Any]:
    """Run scenario 1 on a fresh stack; return its figures."""
    with stack(sims=2) as running:
        api = Api(f"http://127.0.0.1:{running.api_port}")
        names = ["hog"] + [f"kid{n:02d}" for n in range(classmates)]
        key = keys(running.env, names)
        hog_jobs = [api.submit(key["hog"], n) for n in range(backlog)]
        time.sleep(0.5)
        kids = together([lambda name=name, n=n: (name, time.time(), api.submit(key[name], 1000 + n))
                         for n, name in enumerate(names[1:])])
        done = [(name, sent, api.wait(key[name], job["id"]), job["queue_position"]) for name, sent, job in kids]
        for job in hog_jobs:
            api.cancel(key["hog"], job["id"])
        hogs = [api.wait(key["hog"], job["id"]) for job in hog_jobs]
    first = min(at(job["created_at"]) for _, _, job, _ in done)
    last = max(at(job["started_at"]) for _, _, job, _ in done)
    runs = [("n", name, at(j["started_at"]), at(j["finished_at"])) for name, _, j, _ in done] + \
        [("H", "hog", at(j["started_at"]), at(j["finished_at"])) for j in hogs if j["started_at"]]
    order = "".join(kind for kind, _, start, _ in sorted(runs, key=lambda r: r[2]) if first <= start <= last)
    gpu = {name: 0.0 for name in names}
    for _, name, start, end in runs:
        gpu[name] += max(0.0, min(end or last, last) - max(start, first))
    took = sorted(at(j["finished_at"]) - at(j["started_at"]) for _, _, j, _ in done)[len(done) // 2]
    arrived = sorted(done, key=lambda d: at(d[2]["created_at"]))
    starts = sorted(start for _, _, start, _ in runs)
    waits, positions = [], []
    for k, (name, _, job, reported) in enumerate(arrived, start=1):
        waited = at(job["started_at"]) - at(job["created_at"])
        waits.append((k, waited, math.ceil(k / 2) * took))
        actual = sum(1 for s in starts if at(job["created_at"]) < s < at(job["started_at"]))
        positions.append((reported, actual))
    hog_in = sum(1 for j in hogs if j["started_at"] and first < at(j["started_at"]) < last)
    return {"order": order, "hog_started": hog_in, "jain": jain(list(gpu.values())), "took": took,
            "waits": waits, "positions": positions}


def cap_scenario(at_once: bool) -> dict[str, Any]:
    """Run scenario 2 on a fresh stack with a global cap of 2; return its figures."""
    with stack(sims=2, env={"COMFYQ_MAX_ADMITTED": "2"}) as running:
        api = Api(f"http://127.0.0.1:{running.api_port}")
        names = [f"s{n}" for n in range(10)]
        key = keys(running.env, names)
        send = [lambda name=name, n=n: [api.submit(key[name], 3 * n + i) for i in range(3)]
                for n, name in enumerate(names)]
        jobs = together(send) if at_once else [call() for call in send]
        done = {name: [api.wait(key[name], job["id"]) for job in own] for name, own in zip(names, jobs)}
    letters = {name: "abcdefghij"[n] for n, name in enumerate(names)}
    runs = sorted((at(j["started_at"]), letters[name]) for name, own in done.items() for j in own)
    firsts = max(min(at(j["started_at"]) for j in own) for own in done.values())
    thirds = min(max(at(j["started_at"]) for j in own) for own in done.values())
    return {"order": "".join(letter for _, letter in runs), "ok": firsts < thirds}


def main() -> None:
    """Run the scenarios and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--classmates", type=int, default=29)
    parser.add_argument("--backlog", type=int, default=100)
    args = parser.parse_args()
    for run in range(1, args.runs + 1):
        r = hog_scenario(args.classmates, args.backlog)
        late = [(k, round(w, 2), round(b, 2)) for k, w, b in r["waits"] if w > b + r["took"]]
        off = [(rep, act) for rep, act in r["positions"] if abs(rep - act) > 1]
        worst = max(r["waits"], key=lambda w: w[0])
        print(f"hog run {run}: start order from the first classmate's submission to the last one's start: "
              f"{r['order']}")
        print(f"  hog jobs started in that window: {r['hog_started']}; Jain's index over the {args.classmates + 1} "
              f"users: {r['jain']:.3f}; median job time T = {r['took']:.2f} s")
        print(f"  last classmate (k={worst[0]}) waited {worst[1]:.2f} s vs ceil(k/2)·T = {worst[2]:.2f} s; "
              f"waits over ceil(k/2)·T + T: {late or 'none'}")
        print("  each classmate's wait, k: waited / ceil(k/2)·T (s): "
              + ", ".join(f"{k}: {w:.1f}/{b:.1f}" for k, w, b in r["waits"]))
        print(f"  positions reported at submission vs actual: max |diff| "
              f"{max(abs(a - b) for a, b in r['positions'])}, mean reported "
              f"{sum(a for a, _ in r['positions']) / len(r['positions']):.1f} vs actual "
              f"{sum(b for _, b in r['positions']) / len(r['positions']):.1f}; off by more than 1: {off or 'none'}")
        verdict = r["hog_started"] == 0 and r["jain"] >= 0.95 and not late and not off
        print(f"  {'PASS' if verdict else 'FAIL'}")
        for at_once in (True, False):
            c = cap_scenario(at_once)
            print(f"cap 2, 10 students x 3 jobs, {'all at once' if at_once else 'one student after another'}: "
                  f"start order {c['order']}; every first before any third: {'PASS' if c['ok'] else 'FAIL'}")


if __name__ == "__main__":
    main()
