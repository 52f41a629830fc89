"""Draining a worker from the dashboard: its running job finishes, then the worker exits (``up`` restarts it)."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from comfyq.sim.testing import txt2img
from tests.integration.conftest import admin_key_of, comfyq_up, wait_until
from tests.integration.editor.test_editor_browser import told_on_failure


@pytest.mark.timeout(300)
def test_a_drained_worker_finishes_its_job_then_stops(tmp_path: Path) -> None:
    with comfyq_up(tmp_path) as (proc, ports, lines), told_on_failure(lines):
        key = admin_key_of(proc, lines)
        api, headers = f"http://127.0.0.1:{ports['api']}", {"Authorization": f"Bearer {key}"}
        for sim in ("sim0", "sim1"):
            requests.post(f"http://127.0.0.1:{ports[sim]}/sim/config", timeout=10,
                          json={"step_seconds": 0.3, "cache": False}).raise_for_status()
        page = requests.Session()
        page.headers["Origin"] = api
        assert page.post(f"{api}/dashboard/sign-in", data={"key": key}, timeout=30).status_code == 200  # redirected
        job = requests.post(f"{api}/v1/jobs", headers=headers, timeout=30,
                            json={"workflow": txt2img(seed=5, steps=12), "instance": "gpu0"}).json()["id"]

        def status() -> str:
            return requests.get(f"{api}/v1/jobs/{job}", headers=headers, timeout=10).json()["status"]

        wait_until(lambda: status() == "running", 60)
        mark = len(lines)
        drained = page.post(f"{api}/dashboard/instances/gpu0/drain", timeout=30)
        assert drained.status_code == 200 and drained.json()["draining"].startswith("gpu0"), drained.text
        wait_until(lambda: any("gpu0 exited with code 0" in line for line in lines[mark:]), 60)
        ran = next(i for i, line in enumerate(lines) if f"comfyq.run_job[{job}] succeeded" in line)
        exited = next(i for i, line in enumerate(lines) if "gpu0 exited with code 0" in line)
        assert status() == "succeeded" and ran < exited  # the job ended first, as it should, then the worker
