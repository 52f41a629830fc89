"""`comfyq up --sim-catalogue`: the simulators serve a recorded catalogue, and jobs in either format run on it."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from comfyq.templates.sim_catalogue import simulator_catalogue
from tests.integration.conftest import admin_key_of, comfyq_up
from tests.integration.workflows.test_saved_workflows import INVERT_API, invert_saved
from tests.unit.sim.test_recorded_catalogue import synthetic

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


def submitted(api: str, auth: dict[str, str], workflow: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Submit a workflow, waiting while no worker has published its catalogue yet (a 503); return the job."""
    while True:
        answer = requests.post(f"{api}/v1/jobs", json={"workflow": workflow}, headers=auth, timeout=10)
        if answer.status_code != 503:
            assert answer.status_code == 202, answer.text
            return answer.json()
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)


def finished(api: str, auth: dict[str, str], job: dict[str, Any], deadline: float) -> dict[str, Any]:
    while job["status"] not in TERMINAL:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = requests.get(f"{api}/v1/jobs/{job['id']}", headers=auth, timeout=5).json()
    return job


def pixels(api: str, auth: dict[str, str], job: dict[str, Any]) -> bytes:
    body = requests.get(job["outputs"][0]["url"], headers=auth, timeout=5).content
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(body)).convert("RGB").tobytes()


def test_up_serves_a_recorded_catalogue_and_runs_both_formats(tmp_path: Path) -> None:
    recorded = tmp_path / "fleet.json"
    recorded.write_text(json.dumps({**simulator_catalogue(), **synthetic(300)}))
    with comfyq_up(tmp_path, args=("--sim-catalogue", str(recorded))) as (proc, ports, lines):
        key = admin_key_of(proc, lines, timeout=120)
        assert any("serve the recorded catalogue" in line for line in lines)
        served = requests.get(f"http://127.0.0.1:{ports['sim0']}/object_info", timeout=10).json()
        assert "Synthetic299" in served and len(served) == len(simulator_catalogue()) + 300
        api, auth = f"http://127.0.0.1:{ports['api']}", {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 120
        api_job = submitted(api, auth, INVERT_API, deadline)
        saved_job = submitted(api, auth, invert_saved(), deadline)
        generic = invert_saved()
        generic["nodes"][1].update(type="Synthetic0", widgets_values=[0.5])
        generic_job = submitted(api, auth, generic, deadline)
        api_job, saved_job, generic_job = (finished(api, auth, j, deadline) for j in (api_job, saved_job, generic_job))
        assert [j["status"] for j in (api_job, saved_job, generic_job)] == ["succeeded"] * 3, (
            api_job, saved_job, generic_job)
        assert (api_job["workflow_format"], saved_job["workflow_format"]) == ("api", "saved")
        assert pixels(api, auth, api_job) == pixels(api, auth, saved_job)
        assert pixels(api, auth, generic_job) != pixels(api, auth, api_job)
