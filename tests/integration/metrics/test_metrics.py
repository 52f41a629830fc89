"""/metrics of a real `comfyq api` process while real workers run, fail, cancel and time out jobs."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from comfyq.accounts.users import get_user
from comfyq.control import reconciler
from comfyq.db.extensions import db
from comfyq.db.models import Job, utcnow
from comfyq.sim.testing import txt2img, with_node_knobs
from comfyq.templates.testing import sample_spec, write_template
from tests.conftest import Receiver
from tests.integration.conftest import api_server, new_key, wait_until

TOKEN = "scrape-secret-for-tests"
COST = 7  # an amount no other test's jobs cost, so the credit counters' deltas are ours


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str], app: Flask, webhooks_worker: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `comfyq api` process with two templates of its own: ``mq`` (slowed sampler) and ``mq_fail``."""
    root = tmp_path_factory.mktemp("metrics")
    slow = with_node_knobs(txt2img(), "3", step_seconds=0.1)
    # 4 steps take 0.4 s of a 30 s limit; 100 steps take 10 s of a 2 s limit.
    write_template(root / "templates", "mq", sample_spec("mq", cost=str(COST), time_limit="30 if steps < 50 else 2"),
                   slow)
    write_template(root / "templates", "mq_fail", sample_spec("mq_fail", cost=str(COST)),
                   with_node_knobs(txt2img(), "8", fail="VAE exploded"))
    env = {**stack_env, "COMFYQ_TEMPLATES_DIR": str(root / "templates"), "COMFYQ_METRICS_TOKEN": TOKEN,
           "COMFYQ_METRICS_TOP_USERS": "3"}
    with api_server(env, root / "api.log") as url:
        yield url


def scrape(url: str, key: str = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape /metrics and parse it: (sample name, sorted labels) → value."""
    answer = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Return one sample's value (0 if absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    """Return how much one sample moved."""
    return value(after, name, **labels) - value(before, name, **labels)


class Api:
    """A user's calls to the API process."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.http = url, requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def submit(self, template: str, steps: int, **extra: Any) -> dict[str, Any]:
        answer = self.http.post(f"{self.url}/v1/jobs", json={
            "template": template, "params": {"prompt": "x", "steps": steps, "size": 64}, "instance": "gpu0", **extra},
            timeout=30)
        assert answer.status_code == 202, answer.text
        return answer.json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self.http.get(f"{self.url}/v1/jobs/{job_id}", timeout=30).json()

    def wait(self, job_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        wait_until(lambda: self.job(job_id)["status"] in (status, "succeeded", "failed", "timed_out", "cancelled"),
                   timeout)
        job = self.job(job_id)
        assert job["status"] == status, job
        return job


def test_metrics_need_an_admin_key_or_the_token(api: str, app: Flask) -> None:
    user_key, admin_key = new_key(app, "metrics-user"), new_key(app, "metrics-admin", "admin")
    assert requests.get(f"{api}/metrics", timeout=30).json()["code"] == 401
    assert requests.get(f"{api}/metrics", headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
    refused = requests.get(f"{api}/metrics", headers={"Authorization": f"Bearer {user_key}"}, timeout=30)
    assert refused.status_code == 403 and "admin" in refused.json()["message"]
    samples = scrape(api, admin_key)
    assert value(samples, "comfyq_metrics_source_up", source="redis") == 1
    assert value(samples, "comfyq_metrics_source_up", source="database") == 1
    assert value(samples, "comfyq_metrics_source_up", source="broker") == 1
    assert value(samples, "comfyq_instance_up", instance="gpu0") == 1
    assert value(samples, "comfyq_instance_intake_open", instance="gpu1") == 1
    assert ("comfyq_queue_depth", (("queue", "comfy"),)) in samples
    assert ("comfyq_queue_depth", (("queue", "webhooks"),)) in samples


def test_success_failure_cancel_and_timeout_move_the_counters(api: str, app: Flask) -> None:
    probe = Api(api, new_key(app, "metrics-probe", max_running=1))
    before = scrape(api)
    flaky = Receiver(codes=(500, 200))  # the success's webhook: one failed attempt, then delivered
    try:
        ok = probe.wait(probe.submit("mq", 4, webhook_url=flaky.url)["id"], "succeeded")
        failed = probe.wait(probe.submit("mq_fail", 4)["id"], "failed")
        slow = probe.submit("mq", 100)
        probe.wait(slow["id"], "running")
        running = scrape(api)
        held = probe.submit("mq", 4)
        assert held["status"] == "pending"  # the user's one running slot is taken
        assert probe.http.post(f"{api}/v1/jobs/{held['id']}/cancel", timeout=30).json()["status"] == "cancelled"
        probe.wait(slow["id"], "timed_out", timeout=60)
        # The webhooks worker counts its attempts; wait until it has made both.
        wait_until(lambda: len(flaky.hits) == 2, 30)
        wait_until(lambda: delta(before, scrape(api), "comfyq_webhook_attempts_total", outcome="delivered") >= 1, 30)
    finally:
        flaky.close()
    after = scrape(api)
    assert value(running, "comfyq_user_running_jobs", user="metrics-probe") == 1
    assert value(running, "comfyq_jobs", state="running") >= 1

    # Ends, counted by the worker process (success, failure, timeout) and the API process (the cancel).
    ended = "comfyq_jobs_ended_total"
    assert delta(before, after, ended, state="succeeded", template="mq") == 1
    assert delta(before, after, ended, state="failed", template="mq_fail") == 1
    assert delta(before, after, ended, state="timed_out", template="mq") == 1
    assert delta(before, after, ended, state="cancelled", template="mq") == 1
    # Queue waits: the three jobs that started; run times: the three that ended running, all on gpu0.
    mq, mq_fail = {"template": "mq", "instance": "gpu0"}, {"template": "mq_fail", "instance": "gpu0"}
    assert delta(before, after, "comfyq_job_queue_wait_seconds_count", **mq) == 2
    assert delta(before, after, "comfyq_job_queue_wait_seconds_count", **mq_fail) == 1
    assert delta(before, after, "comfyq_job_run_seconds_count", **mq) == 2
    assert delta(before, after, "comfyq_job_run_seconds_count", **mq_fail) == 1
    # The timed-out run lasted about its 2 s limit: at most the quick one falls in the 1 s bucket.
    assert delta(before, after, "comfyq_job_run_seconds_bucket", le="1.0", **mq) <= 1
    assert delta(before, after, "comfyq_job_run_seconds_bucket", le="+Inf", **mq) == 2
    assert delta(before, after, "comfyq_job_run_seconds_sum", **mq) >= 1.5
    assert value(after, "comfyq_job_run_seconds_bucket", le="+Inf", **mq) == value(
        after, "comfyq_job_run_seconds_count", **mq)
    # Credits: four debits at submission; the failure, the timeout and the cancel before running refunded.
    assert delta(before, after, "comfyq_credits_debited_total") == 4 * COST
    assert delta(before, after, "comfyq_credits_refunded_total") == 3 * COST
    # Webhooks, counted by the webhooks worker.
    assert delta(before, after, "comfyq_webhook_attempts_total", outcome="failed") == 1
    assert delta(before, after, "comfyq_webhook_attempts_total", outcome="delivered") == 1
    assert (ok["status"], failed["status"]) == ("succeeded", "failed")
    assert value(after, "comfyq_user_running_jobs", user="metrics-probe") == 0


def test_reconciler_repairs_are_counted(api: str, app: Flask, keys: dict[str, str]) -> None:
    with app.app_context():
        owner = get_user("svc").id
        lost = Job(queue="comfy", workflow=txt2img(seed=902), soft_time_limit=5.0, outputs=[], user_id=owner,
                   status="queued", updated_at=utcnow() - timedelta(minutes=5))
        db.session.add(lost)
        db.session.commit()
        before = scrape(api)
        repaired = reconciler.reconcile()
    after = scrape(api)
    assert lost.id in repaired["requeued"]
    for repair in ("admitted", "requeued", "timed_out", "positions_rebuilt"):
        moved = delta(before, after, "comfyq_reconciler_repairs_total", repair=repair)
        assert moved == len(repaired[repair]), (repair, repaired)
    probe = Api(api, keys["svc"])
    probe.wait(lost.id, "succeeded")
