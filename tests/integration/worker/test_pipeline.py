"""End to end: API → Redis → prefork workers → two simulators → stored outputs."""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient

from comfyq.events import log as events
from comfyq.db.extensions import db
from comfyq.db.models import Job
from comfyq.sim.process import SimProcess
from tests.conftest import txt2img
from tests.integration.conftest import submit, wait_for, wait_until


def sim_history(sim: SimProcess, prompt_id: str) -> dict[str, Any]:
    return requests.get(f"{sim.url}/history/{prompt_id}", timeout=5).json()


def test_twenty_jobs_spread_over_both_instances(client: FlaskClient, sims: list[SimProcess]) -> None:
    jobs = [submit(client, txt2img(seed=i, sim={"3": {"step_seconds": 0.02}})) for i in range(20)]
    # Beyond the user's cap (one per GPU) jobs wait as pending until one of theirs ends.
    assert [j["status"] for j in jobs[:2]] == ["queued", "queued"]
    assert all(j["status"] in ("queued", "pending") and j["queue"] == "comfy" for j in jobs)
    done = [wait_for(client, j["id"]) for j in jobs]
    assert [j["status"] for j in done] == ["succeeded"] * 20, [j["error"] for j in done]
    assert {j["instance"] for j in done} == {"gpu0", "gpu1"}
    for job in done:
        ran, idle = (sims[0], sims[1]) if job["instance"] == "gpu0" else (sims[1], sims[0])
        assert sim_history(ran, job["id"])[job["id"]]["status"]["status_str"] == "success"
        assert sim_history(idle, job["id"]) == {}  # exactly one instance ran it
        assert len(job["outputs"]) == 1 and job["outputs"][0]["size"] > 0


def test_pinned_jobs_run_only_on_their_instance(client: FlaskClient, sims: list[SimProcess]) -> None:
    jobs = [submit(client, txt2img(seed=100 + i), instance="gpu1") for i in range(6)]
    assert {j["queue"] for j in jobs} == {"comfy.gpu1"}
    done = [wait_for(client, j["id"]) for j in jobs]
    assert {(j["status"], j["instance"]) for j in done} == {("succeeded", "gpu1")}
    for job in done:
        assert sim_history(sims[0], job["id"]) == {}
        assert job["id"] in sim_history(sims[1], job["id"])


def test_outputs_download_with_matching_sha256(client: FlaskClient, sims: list[SimProcess]) -> None:
    job = wait_for(client, submit(client, txt2img(seed=7, size=96))["id"])
    assert job["status"] == "succeeded"
    (output,) = job["outputs"]
    body = client.get(f"/v1/jobs/{job['id']}/outputs/{output['name']}")
    assert body.status_code == 200 and body.mimetype == "image/png"
    assert body.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert hashlib.sha256(body.data).hexdigest() == output["sha256"] and len(body.data) == output["size"]
    assert output["url"].endswith(f"/v1/jobs/{job['id']}/outputs/{output['name']}")
    sim = sims[0] if job["instance"] == "gpu0" else sims[1]
    ref = sim_history(sim, job["id"])[job["id"]]["outputs"]["9"]["images"][0]
    original = requests.get(f"{sim.url}/view", params=ref, timeout=5).content
    assert hashlib.sha256(original).hexdigest() == output["sha256"]
    missing = client.get(f"/v1/jobs/{job['id']}/outputs/nope.png").get_json()
    assert missing["code"] == 404 and output["name"] in missing["message"]


def test_progress_is_recorded_and_logged(client: FlaskClient, rds: redis.Redis, app: Flask) -> None:
    pubsub = rds.pubsub()
    pubsub.psubscribe(events.CHANNELS)
    job = submit(client, txt2img(steps=5), instance="gpu0")
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded"
    assert done["progress"]["nodes_done"] == done["progress"]["nodes_total"] == 7
    assert done["progress"]["fraction"] == 1.0
    assert done["progress"]["partial_outputs"][0]["filename"].endswith(".png")
    logged = [(n, json.loads(body)) for n, body in events.read_after(rds, events.job_log(job["id"]), events.START)]
    assert [n for n, _ in logged] == sorted((n for n, _ in logged), key=events.order)
    kinds = [e["type"] for _, e in logged]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "succeeded"
    steps = [e["value"] for _, e in logged if e["type"] == "progress" and e["node"] == "3"]
    assert steps == [0, 1, 2, 3, 4, 5]
    assert kinds.index("output") > max(i for i, k in enumerate(kinds) if k == "progress")
    assert {"node": "3", "node_type": "KSampler"}.items() <= logged[kinds.index("progress") + 4][1].items()
    fractions = [e["fraction"] for _, e in logged if e["type"] == "progress"]
    assert fractions == sorted(fractions) and 0 < fractions[-1] < 1
    assert logged[-1][1]["outputs"][0]["url"] == f"/v1/jobs/{job['id']}/outputs/{done['outputs'][0]['name']}"
    # The same events, in the same order, were announced on the job's channel and logged for its owner.
    announced, deadline = [], time.monotonic() + 5
    while time.monotonic() < deadline and len(announced) < len(logged):
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "pmessage" and message["channel"] == events.job_log(job["id"]).encode():
            announced.append(events.parse(message["data"]))
    pubsub.close()
    # Each announcement names the event before it, so a listener knows when it missed one.
    chain = list(zip([events.START] + [n for n, _ in logged], [n for n, _ in logged],
                     [json.dumps(e, separators=(",", ":")) for _, e in logged]))
    assert announced == chain
    with app.app_context():
        owner_id = db.session.get(Job, job["id"]).user_id
    owner = events.read_after(rds, events.user_log(owner_id), events.START)
    assert [json.loads(body) for _, body in owner if json.loads(body)["job_id"] == job["id"]] == [e for _, e in logged]


def test_progress_is_celery_task_state_too(client: FlaskClient, app) -> None:
    job = submit(client, txt2img(steps=30, sim={"3": {"step_seconds": 0.05}}), instance="gpu1")
    result = app.extensions["celery"].AsyncResult(job["id"])
    deadline = time.monotonic() + 20
    while result.state != "PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.state == "PROGRESS"
    assert result.info["node_type"] == "KSampler" and result.info["max"] == 30
    assert wait_for(client, job["id"])["status"] == "succeeded"


def test_cancel_queued_job_never_reaches_comfyui(client: FlaskClient, sims: list[SimProcess]) -> None:
    blocker = submit(client, txt2img(sim={"3": {"node_seconds": 1.5}}), instance="gpu0")
    wait_for(client, blocker["id"], {"running"})
    queued = submit(client, txt2img(seed=555), instance="gpu0")
    seen = client.get(f"/v1/jobs/{queued['id']}").get_json()
    assert seen["status"] == "queued" and seen["queue_position"] == 0
    cancelled = client.post(f"/v1/jobs/{queued['id']}/cancel").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["queue_position"] is None
    assert wait_for(client, blocker["id"])["status"] == "succeeded"
    follower = wait_for(client, submit(client, txt2img(seed=556), instance="gpu0")["id"])
    assert follower["status"] == "succeeded"  # the worker went past the cancelled job's message
    assert sim_history(sims[0], queued["id"]) == {}
    job = client.get(f"/v1/jobs/{queued['id']}").get_json()
    assert (job["status"], job["instance"], job["started_at"]) == ("cancelled", None, None)
    again = client.post(f"/v1/jobs/{queued['id']}/cancel")
    assert again.status_code == 200 and again.get_json()["status"] == "cancelled"


def test_cancel_running_job_interrupts_it(client: FlaskClient, sims: list[SimProcess]) -> None:
    job = submit(client, txt2img(steps=100, sim={"3": {"step_seconds": 0.1}}), instance="gpu1")
    deadline = time.monotonic() + 20
    while True:
        seen = client.get(f"/v1/jobs/{job['id']}").get_json()
        if (seen.get("progress") or {}).get("value", 0) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert seen["status"] == "running" and seen["progress"]["node_type"] == "KSampler"
    started = time.monotonic()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").get_json()["status"] == "cancelled"
    while sims[1].url and time.monotonic() - started < 5:
        queue = requests.get(f"{sims[1].url}/queue", timeout=5).json()
        if not queue["queue_running"]:
            break
        time.sleep(0.05)
    assert time.monotonic() - started < 5, "the prompt kept running after the cancel"
    entry = sim_history(sims[1], job["id"])[job["id"]]
    assert [m[0] for m in entry["status"]["messages"]][-1] == "execution_interrupted"
    final = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert final["status"] == "cancelled" and final["outputs"] == []
    assert wait_for(client, submit(client, txt2img(), instance="gpu1")["id"])["status"] == "succeeded"
    conflict = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert conflict.status_code == 200
    done = wait_for(client, submit(client, txt2img(seed=9))["id"])
    refused = client.post(f"/v1/jobs/{done['id']}/cancel").get_json()
    assert refused["code"] == 409 and "already ended as succeeded" in refused["message"]


def test_failing_node_fails_the_job_with_node_and_message(client: FlaskClient) -> None:
    job = wait_for(client, submit(client, txt2img(sim={"8": {"fail": "VAE exploded"}}))["id"])
    assert job["status"] == "failed"
    error = job["error"]
    assert (error["type"], error["node_id"], error["node_type"]) == ("execution_failed", "8", "VAEDecode")
    assert "VAE exploded" in error["message"] and job["outputs"] == []


def test_comfyui_validation_error_keeps_node_errors(client: FlaskClient) -> None:
    # What the published catalogue tells is refused at submission; this is a refusal only the instance knows of.
    graph = txt2img(sim={"4": {"reject": "the checkpoint vanished"}})
    job = wait_for(client, submit(client, graph)["id"])
    assert job["status"] == "failed" and job["error"]["type"] == "prompt_rejected"
    node_error = job["error"]["node_errors"]["4"]["errors"][0]
    assert node_error["type"] == "custom_validation_failed"
    assert node_error["details"] == "the checkpoint vanished"


def test_list_jobs_newest_first_with_filter_and_pages(client: FlaskClient) -> None:
    ids = [submit(client, txt2img(seed=900 + i))["id"] for i in range(3)]
    for job_id in ids:
        wait_for(client, job_id)
    page = client.get("/v1/jobs?page_size=2").get_json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:2] and page["total"] >= 3
    second = client.get("/v1/jobs?page_size=2&page=2").get_json()
    assert second["items"][0]["id"] == ids[0]
    failed = client.get("/v1/jobs?status=failed&page_size=100").get_json()
    assert failed["items"] and all(j["status"] == "failed" for j in failed["items"])


def test_instances_report_health_depth_and_running_job(client: FlaskClient) -> None:
    job = submit(client, txt2img(sim={"3": {"node_seconds": 1.0}}), instance="gpu0")
    wait_for(client, job["id"], {"running"})
    time.sleep(0.1)
    body = client.get("/v1/instances").get_json()
    rows = {row["name"]: row for row in body["instances"]}
    assert set(rows) == {"gpu0", "gpu1"}
    assert rows["gpu0"]["reachable"] and rows["gpu0"]["worker_online"] and rows["gpu0"]["websocket"]
    assert rows["gpu0"]["state"] == "healthy" and rows["gpu0"]["intake"] == "open"
    assert rows["gpu0"]["comfyui_queue"] in (0, 1) and rows["gpu0"]["vram_free"] > 0
    assert time.time() - datetime.fromisoformat(rows["gpu0"]["last_seen"]).timestamp() < 5
    assert rows["gpu0"]["last_seen"].endswith("+00:00") and rows["gpu0"]["stuck_job"] is None
    assert rows["gpu0"]["running_job"] == job["id"] and rows["gpu0"]["queue"] == "comfy.gpu0"
    assert body["shared_queue"] == {"name": "comfy", "depth": 0}
    assert "url" not in rows["gpu0"] and "127.0.0.1" not in json.dumps(body)
    wait_for(client, job["id"])
    # The worker clears it just after the job's final commit (and that commit's announcements).
    wait_until(lambda: client.get("/v1/instances").get_json()["instances"][0]["running_job"] is None, 5)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda g: g["3"].pop("class_type"), "node 3: missing 'class_type'"),
    (lambda g: g["8"]["inputs"].update(samples=["99", 0]), "links to node '99'"),
    (lambda g: g.pop("9"), "no output node"),
    (lambda g: g["3"].update(class_type="FancyCustomNode"), "'FancyCustomNode' is not installed"),
    (lambda g: g["8"]["inputs"].update(vae=["4", 5]), "has 3 output(s)"),
])
def test_bad_graphs_are_422_with_catalogue(client: FlaskClient, mutate: Any, fragment: str) -> None:
    graph = txt2img()
    mutate(graph)
    before = client.get("/v1/jobs?page_size=1").get_json()["total"]
    body = client.post("/v1/jobs", json={"workflow": graph}).get_json()
    assert body["code"] == 422 and fragment in body["message"], body
    assert client.get("/v1/jobs?page_size=1").get_json()["total"] == before


def test_bad_requests_never_500(client: FlaskClient) -> None:
    cases = [("not json", "application/json", 400), ('"a string"', "application/json", 422),
             ('{"workflow": []}', "application/json", 422), ("workflow=x", "text/plain", 422),
             ('{"workflow": {"1": {"class_type": "SaveImage", "inputs": {}}}, "instance": "gpu9"}',
              "application/json", 422)]
    for data, ctype, code in cases:
        body = client.post("/v1/jobs", data=data, content_type=ctype).get_json()
        assert body["code"] == code and body["message"], (data, body)


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
