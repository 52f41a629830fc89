"""Jobs end cleanly when limits fire or an instance goes away, through real workers."""
from __future__ import annotations

import time

import requests
from flask import Flask
from flask.testing import FlaskClient

from comfyq import create_app
from comfyq.sim.process import SimProcess
from tests.conftest import txt2img
from tests.integration.conftest import submit, wait_for, wait_until, with_key


def test_soft_time_limit_interrupts_and_times_out(app: Flask, sims: list[SimProcess], keys: dict[str, str]) -> None:
    # Limits travel with each message, so an API configured with short ones is enough.
    strict = with_key(create_app({**app.config, "SOFT_TIME_LIMIT": 3.0, "TIME_LIMIT_GRACE": 3.0}).test_client(),
                      keys["svc"])
    started = time.monotonic()
    job = submit(strict, txt2img(steps=200, sim={"3": {"step_seconds": 0.05}}), instance="gpu0")
    done = wait_for(strict, job["id"], timeout=30)
    assert done["status"] == "timed_out" and done["error"]["type"] == "timed_out"
    assert time.monotonic() - started < 8  # 200 steps would take 10 s; the prompt was interrupted
    # The interrupt is cooperative: the prompt stops within a step of the job ending.
    wait_until(lambda: job["id"] not in requests.get(f"{sims[0].url}/queue", timeout=5).text, timeout=5)
    found = requests.get(f"{sims[0].url}/history/{job['id']}", timeout=5).json()
    if found:  # it ran, and was interrupted mid-sampling
        assert [m[0] for m in found[job["id"]]["status"]["messages"]][-1] == "execution_interrupted"
    # else it was still pending on a loaded machine, and was taken out of the queue unrun
    assert wait_for(strict, submit(strict, txt2img(seed=31), instance="gpu0")["id"])["status"] == "succeeded"


def test_unreachable_instance_requeues_then_runs(client: FlaskClient, sims: list[SimProcess]) -> None:
    sims[1].stop()
    try:
        job = submit(client, txt2img(seed=77), instance="gpu1")
        deadline = time.monotonic() + 20
        while True:
            seen = client.get(f"/v1/jobs/{job['id']}").get_json()
            if seen["status"] == "queued" and (seen["error"] or {}).get("type") == "instance_unavailable":
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        assert "instance gpu1" in seen["error"]["message"]
    finally:
        sims[1].start()
    done = wait_for(client, job["id"], timeout=60)
    assert done["status"] == "succeeded" and done["instance"] == "gpu1" and done["error"] is None
