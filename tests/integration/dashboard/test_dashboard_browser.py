"""Acceptance of the dashboard (issue 18): headless Chromium on /dashboard while jobs run on two simulators.

A real ``comfyq up`` (API, two workers, two simulators, Redis). The admin signs in with the key once; the page
shows both instances, a running job's progress moving, queue depths equal to Redis's, a finished job's
thumbnail; a job is cancelled from the page, and an instance's intake closed and opened again. A screenshot goes to the test's tmp_path and, with
``COMFYQ_UPDATE_SCREENSHOTS=1``, to ``docs/dashboard.png``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
import requests
from selenium.webdriver.common.by import By

from comfyq.sim.testing import txt2img
from tests.browser import Browser
from tests.integration.conftest import admin_key_of, comfyq_up, wait_until
from tests.integration.editor.test_editor_browser import told_on_failure

STEPS = 20
STEP_SECONDS = 0.3  # a KSampler of about 6 s: progress is seen moving
JOBS = 8
DOCS = Path(__file__).resolve().parents[3] / "docs" / "dashboard.png"
STATE = """
return {
  instances: [...document.querySelectorAll('.card[data-instance]')].map(c => c.dataset.instance),
  running: [...document.querySelectorAll('.card .running')].map(r => [r.dataset.job,
            Number(r.querySelector('.bar').dataset.fraction)]),
  queues: Object.fromEntries([...document.querySelectorAll('[data-queue]')].map(r => [r.dataset.queue,
            Number(r.dataset.depth)])),
  thumbs: [...document.querySelectorAll('#jobs img.thumb')].filter(i => i.complete && i.naturalWidth > 0).length,
  statuses: Object.fromEntries([...document.querySelectorAll('#jobs tr[data-job]')].map(r => [r.dataset.job,
            r.dataset.status])),
  live: document.getElementById('live').textContent,
  intake: Object.fromEntries([...document.querySelectorAll('.card')].map(c => [c.dataset.instance,
            [c.dataset.intake, c.dataset.held]])),
};
"""


def sign_in(page: Browser, api: str, key: str) -> None:
    """Sign in on the form with the admin's key; check the key went nowhere but the POST."""
    page.driver.get(f"{api}/dashboard")
    page.driver.find_element(By.ID, "key").send_keys(key)
    page.driver.find_element(By.ID, "sign-in").click()
    page.wait(30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-instance]"))
    cookies = page.driver.get_cookies()
    assert [c["name"] for c in cookies] == ["comfyq_operator"] and cookies[0]["httpOnly"], cookies
    assert key not in cookies[0]["value"] and key not in page.driver.page_source


@pytest.mark.timeout(600)
def test_the_dashboard_follows_two_instances_live_and_cancels_a_job(
        tmp_path: Path, browsers: Callable[[str], Browser]) -> None:
    settings = {"COMFYQ_MAX_RUNNING_PER_USER": "3"}  # 3 admitted (2 run, 1 waits in `comfy`), the rest pending
    with comfyq_up(tmp_path, settings) as (proc, ports, lines), told_on_failure(lines):
        key = admin_key_of(proc, lines)
        api, headers = f"http://127.0.0.1:{ports['api']}", {"Authorization": f"Bearer {key}"}
        broker = redis.Redis(port=ports["redis"])
        for sim in ("sim0", "sim1"):
            requests.post(f"http://127.0.0.1:{ports[sim]}/sim/config", timeout=10,
                          json={"step_seconds": STEP_SECONDS, "cache": False}).raise_for_status()
        page = browsers("operator")
        sign_in(page, api, key)
        jobs = []
        for n in range(JOBS):
            made = requests.post(f"{api}/v1/jobs", headers=headers, timeout=30,
                                 json={"workflow": txt2img(seed=n, steps=STEPS, prefix=f"dash{n}")})
            assert made.status_code == 202, made.text
            jobs.append(made.json()["id"])

        def now() -> dict[str, Any]:
            return page.js(STATE)

        # Each instance has a card; a running job's bar moves without a reload.
        assert len(now()["instances"]) == 2, now()
        seen: dict[str, set[float]] = {}

        def moving() -> bool:
            for job, fraction in now()["running"]:
                seen.setdefault(job, set()).add(fraction)
            return any(len({f for f in fractions if 0 < f < 1}) >= 2 for fractions in seen.values())

        wait_until(moving, 90)
        assert now()["live"] == "live"

        # Queue depths as Redis has them (read around the page's, so a change in between is noticed).
        def depths_match() -> bool:
            before = {name: broker.llen(name) for name in now()["queues"]}
            shown = now()["queues"]
            after = {name: broker.llen(name) for name in shown}
            return before == after == shown and {"comfy", "control", "webhooks"} <= set(shown)

        wait_until(depths_match, 30)

        # Cancel the last job (still pending) from the page.
        victim = jobs[-1]
        page.driver.find_element(By.CSS_SELECTOR, f"button.cancel[data-job='{victim}']").click()
        wait_until(lambda: requests.get(f"{api}/v1/jobs/{victim}", headers=headers, timeout=10)
                   .json()["status"] == "cancelled", 30)
        wait_until(lambda: now()["statuses"].get(victim) == "cancelled", 30)

        # A finished job's thumbnail shows, while others still run: the picture for the README.
        wait_until(lambda: now()["thumbs"] >= 1 and any(f > 0.2 for _, f in now()["running"]), 120)
        page.driver.set_window_size(1400, 1200)  # the whole page, recent jobs included
        shot = page.screenshot("dashboard")
        if os.environ.get("COMFYQ_UPDATE_SCREENSHOTS") == "1":
            shutil.copyfile(shot, DOCS)
        wait_until(lambda: all(now()["statuses"].get(job) in ("succeeded", "cancelled") for job in jobs), 180)

        # Close gpu1's intake from the page: the worker stops taking shared work, and says so; then open it again.
        def intake_of(name: str) -> tuple[str, str]:
            return (broker.hget(f"comfyq:instance:{name}", "intake") or b"").decode(), now()["intake"][name][1]

        page.driver.find_element(By.CSS_SELECTOR, "button.close-intake[data-instance='gpu1']").click()
        wait_until(lambda: intake_of("gpu1") == ("closed", "admin") and now()["intake"]["gpu1"][0] == "closed", 30)
        assert intake_of("gpu0")[0] == "open"
        page.driver.find_element(By.CSS_SELECTOR, "button.open-intake[data-instance='gpu1']").click()
        wait_until(lambda: intake_of("gpu1") == ("open", "") and now()["intake"]["gpu1"][0] == "open", 30)
        page.collect()
        assert not [x for x in page.requests() if x.status and x.status >= 400], page.requests()
    assert shot.read_bytes()[:4] == b"\x89PNG" and moving()
