"""Flower under `comfyq up`: every queue's depth and comfyq's figures from its API, with credentials, unasked."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import requests

from tests.integration.conftest import admin_key_of, comfyq_up

ROOT = Path(__file__).resolve().parents[3]
USER, PASSWORD = "ops", "flower-test-secret"
QUEUES = {"comfy", "comfy.gpu0", "comfy.gpu1", "control", "webhooks"}
FIGURES = {"instance", "intake", "running_job", "global_cap", "global_used", "per_user_cap", "pending"}


def poll(read: Callable[[], Any], good: Callable[[Any], bool], timeout: float) -> Any:
    """Call ``read`` until ``good`` holds for what it returns; return that, or fail showing the last answer."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = read()
            if good(last):
                return last
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s; last answer: {last!r}")


def test_flower_shows_every_queue_and_the_caps_at_once_and_asks_for_credentials(tmp_path: Path) -> None:
    extra = {"COMFYQ_FLOWER_USER": USER, "COMFYQ_FLOWER_PASSWORD": PASSWORD, "COMFYQ_MAX_ADMITTED": "1"}
    with comfyq_up(tmp_path, extra=extra) as (proc, ports, lines):
        key = admin_key_of(proc, lines)
        up = time.monotonic()
        flower, api = f"http://127.0.0.1:{ports['flower']}", f"http://127.0.0.1:{ports['api']}"
        auth = (USER, PASSWORD)

        def get(path: str) -> Any:
            answer = requests.get(f"{flower}{path}", auth=auth, timeout=5)
            answer.raise_for_status()
            return answer.json()

        def comfyq_stats() -> dict[str, dict[str, Any]]:
            workers = get("/api/workers")
            return {name.split("@")[0]: info["stats"]["comfyq"] for name, info in workers.items()
                    if "comfyq" in info.get("stats", {})}

        # Within 10 s of the stack being up, and no ?refresh=1: every queue, and each GPU worker's figures.
        depths = poll(lambda: {q["name"]: q["messages"] for q in get("/api/queues/length")["active_queues"]},
                      lambda found: QUEUES <= set(found), 10)
        assert all(isinstance(depths[q], int) for q in QUEUES), depths
        shown = poll(comfyq_stats, lambda s: {"gpu0", "gpu1"} <= set(s), max(1.0, 10 - (time.monotonic() - up)))
        for name in ("gpu0", "gpu1"):
            assert FIGURES <= set(shown[name]) and shown[name]["instance"] == name, shown
            assert shown[name]["global_cap"] == 1 and shown[name]["per_user_cap"] == 2, shown
        broker = requests.get(f"{flower}/broker", auth=auth, timeout=5).text
        assert all(f">{q}<" in broker for q in QUEUES), broker

        # The figures follow the jobs: one admitted and running on gpu0 (the global cap is 1), two pending.
        workflow = json.loads((ROOT / "templates_wf/txt2img/workflow.json").read_text())
        workflow["5"]["inputs"].update(width=64, height=64)
        workflow["3"]["_meta"] = {"sim": {"node_seconds": 4.0}}
        headers = {"Authorization": f"Bearer {key}"}
        ids = [requests.post(f"{api}/v1/jobs", json={"workflow": workflow, "instance": "gpu0"}, headers=headers,
                             timeout=10).json()["id"] for _ in range(3)]
        busy = poll(comfyq_stats, lambda s: s["gpu0"]["running_job"] == ids[0] and s["gpu0"]["pending"] == 2, 30)
        assert busy["gpu0"]["global_used"] == 1 and busy["gpu1"]["running_job"] is None, busy
        assert busy["gpu0"]["intake"] in ("open", "closed"), busy
        # The Tasks tab names the job and where it goes.
        task = poll(lambda: get("/api/tasks").get(ids[0]), lambda t: t is not None, 20)
        assert task["name"] == "comfyq.run_job" and task["args"] == f"job {ids[0]}, raw workflow", task
        assert task["kwargs"] == "instance gpu0", task

        # Without the credentials, or with wrong ones, neither pages nor API answer.
        for path in ("/", "/broker", "/api/workers", "/api/queues/length"):
            assert requests.get(f"{flower}{path}", timeout=5).status_code == 401, path
            assert requests.get(f"{flower}{path}", auth=(USER, "wrong"), timeout=5).status_code == 401, path
        assert any(f"basic auth: user '{USER}' with COMFYQ_FLOWER_PASSWORD" in line for line in lines), lines
