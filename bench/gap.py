"""Idle gap between jobs (P1): how long one instance sits idle between one prompt's end and the next's start.

The simulator stamps each prompt's ``execution_start`` and ``execution_success``
(milliseconds, as ComfyUI does in /history's status messages). The baseline
queues N prompts of a fixed duration straight on the instance, all at once;
comfyq runs the same prompts as N jobs of one user allowed several at once,
with ``COMFYQ_LOOKAHEAD`` 2 (the next prompt waits on the
instance) and 1 (no lookahead: the next prompt is sent when the worker is free).
Usage: python bench/gap.py [N] [SECONDS]
"""
from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import percentile, stack, user_key  # noqa: E402
from comfyq.comfy import ComfyClient  # noqa: E402
from comfyq.sim.testing import txt2img, with_node_knobs  # noqa: E402

STEPS = 10


def workflow(seed: int, seconds: float) -> dict:
    """Return a txt2img graph whose KSampler takes ``seconds`` (a fresh seed: never a cache hit)."""
    return with_node_knobs(txt2img(seed=seed, steps=STEPS, width=64, height=64), "3", step_seconds=seconds / STEPS)


def spans(sim_url: str, prompt_ids: list[str], timeout: float) -> list[tuple[float, float]]:
    """Wait until every prompt is in the instance's history; return their (start, end) in seconds, by start."""
    deadline = time.monotonic() + timeout
    with requests.Session() as http:
        while True:
            history = http.get(f"{sim_url}/history", timeout=30).json()
            if all(p in history for p in prompt_ids):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sum(p not in history for p in prompt_ids)} prompts never ended")
            time.sleep(0.5)
    found = []
    for prompt_id in prompt_ids:
        stamps = {kind: data["timestamp"] / 1000 for kind, data in history[prompt_id]["status"]["messages"]}
        if "execution_success" not in stamps:
            raise RuntimeError(f"prompt {prompt_id} did not succeed: {history[prompt_id]['status']}")
        found.append((stamps["execution_start"], stamps["execution_success"]))
    return sorted(found)


def gaps(found: list[tuple[float, float]]) -> list[float]:
    """Return the idle time between each prompt's end and the next one's start."""
    return [max(0.0, nxt[0] - cur[1]) for cur, nxt in zip(found, found[1:])]


def native(sim_url: str, n: int, seconds: float, seed: int) -> list[float]:
    """Queue ``n`` prompts straight on the instance; return the gaps between them."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    with ComfyClient(sim_url) as client:
        for i, prompt_id in enumerate(ids):
            client.queue_prompt(workflow(seed + i, seconds), prompt_id)
    return gaps(spans(sim_url, ids, timeout=n * seconds * 3 + 60))


def through_comfyq(n: int, seconds: float, lookahead: int, with_native: bool) -> tuple[list[float], list[float]]:
    """Run ``n`` jobs through a fresh stack with ``lookahead``; return their gaps (and the baseline's, if asked)."""
    with stack(sims=1, env={"COMFYQ_LOOKAHEAD": str(lookahead)}) as running:
        sim_url = running.env["COMFYQ_INSTANCES"].split("=", 1)[1]
        base = native(sim_url, n, seconds, seed=10_000) if with_native else []
        # A lone user's cap (one running job per instance) would leave the worker no next job to hold.
        key = user_key(running, "gap", credits=10 * n, max_running=8, max_waiting=0, rate_per_minute=0)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        api = f"http://127.0.0.1:{running.api_port}"
        ids = []
        for i in range(n):
            answer = http.post(f"{api}/v1/jobs", json={"workflow": workflow(20_000 + lookahead * n + i, seconds)},
                               timeout=30)
            answer.raise_for_status()
            ids.append(answer.json()["id"])
        ours = gaps(spans(sim_url, ids, timeout=n * seconds * 3 + 60))
        deadline = time.monotonic() + 60
        while (status := http.get(f"{api}/v1/jobs/{ids[-1]}", timeout=10).json()["status"]) != "succeeded":
            if time.monotonic() > deadline or status in ("failed", "timed_out", "cancelled"):
                raise RuntimeError(f"the last job ended {status}, not succeeded")
            time.sleep(0.2)
        return ours, base


def line(label: str, values: list[float]) -> str:
    """Return one row of the table: median, p95, mean and max in milliseconds."""
    return (f"  {label:<34} median {statistics.median(values) * 1000:7.1f} ms   p95 {percentile(values, 95) * 1000:7.1f} ms"
            f"   mean {statistics.mean(values) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms")


def main(n: int = 200, seconds: float = 0.3) -> None:
    """Measure the gaps natively and through comfyq (lookahead 2 and 1); print them and the ratios."""
    two, base = through_comfyq(n, seconds, 2, with_native=True)
    one, _ = through_comfyq(n, seconds, 1, with_native=False)
    print(f"idle gap bench, N={n} prompts of {seconds:g} s on one simulator; gap = next execution_start - "
          "execution_success (the instance's own stamps, 1 ms resolution)")
    print(line("straight on the instance (baseline)", base))
    print(line("comfyq, COMFYQ_LOOKAHEAD=2", two))
    print(line("comfyq, COMFYQ_LOOKAHEAD=1", one))
    extra = statistics.median(two) - statistics.median(base)
    print(f"  lookahead 2 minus baseline:        median {extra * 1000:+.1f} ms (target: <= +5 ms)")
    floor = 0.001  # the stamps' resolution: a median of 0 ms reads as 1 ms for the ratios
    print(f"  ratio to baseline (median):        lookahead 2 {max(statistics.median(two), floor) / max(statistics.median(base), floor):.1f}x, "
          f"lookahead 1 {max(statistics.median(one), floor) / max(statistics.median(base), floor):.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, float(sys.argv[2]) if len(sys.argv) > 2 else 0.3)
