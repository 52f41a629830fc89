"""Raw workflows through the real API and workers: what an instance would refuse is a 422 that costs and writes
nothing; images must be the sender's uploads, prefixes plain names; what an instance still refuses is refunded once."""
from __future__ import annotations

import io
from typing import Any, Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from comfyq.accounts import credits
from comfyq.workflows.published import KEY
from comfyq.db.extensions import db
from comfyq.jobs.machine import JobStatus, transition
from comfyq.db.models import Job, LedgerEntry, Upload, User
from comfyq.jobs.recovery import end_orphaned
from tests.conftest import txt2img
from tests.integration.conftest import new_user, submit, wait_for, wait_until
from tests.integration.submission.test_uploads import image_bytes

Graph = dict[str, Any]


@pytest.fixture(scope="module")
def payer(app: Flask, stack_env: dict[str, str]) -> FlaskClient:
    """A paying user, once both workers have published their catalogues."""
    rds = redis.Redis.from_url(stack_env["COMFYQ_REDIS_URL"])
    wait_until(lambda: all(rds.exists(KEY.format(name)) for name in ("gpu0", "gpu1")), 30)
    return new_user(app, "catalogue-payer", credits=10)


def written(app: Flask, name: str) -> dict[str, Any]:
    """Return what a user has in the database: balance, ledger entries, jobs and uploads."""
    def count(model: Any) -> int:
        return db.session.scalar(select(func.count()).select_from(model).where(model.user_id == user.id))

    with app.app_context():
        user = db.session.scalar(select(User).where(User.name == name))
        return {"balance": user.balance, "ledger": count(LedgerEntry), "jobs": count(Job),
                "uploads": count(Upload), "all_jobs": db.session.scalar(select(func.count()).select_from(Job))}


def upload(client: FlaskClient) -> dict[str, Any]:
    """Upload a fresh image as ``client``; return the upload."""
    answer = client.post("/v1/uploads", data={"file": (io.BytesIO(image_bytes()), "x.png")},
                         content_type="multipart/form-data")
    assert answer.status_code in (200, 201), answer.get_json()
    return answer.get_json()


def img2img(image: Any) -> Graph:
    """Return txt2img drawing over a LoadImage (node 10) of ``image``."""
    graph = txt2img(seed=5)
    graph["10"] = {"class_type": "LoadImage", "inputs": {"image": image}}
    graph["12"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    graph["3"]["inputs"].update(latent_image=["12", 0], denoise=0.5)
    return graph


def setting(node: str, name: str, value: Any) -> Callable[[Graph], Graph]:
    def change(graph: Graph) -> Graph:
        graph[node]["inputs"][name] = value
        return graph
    return change


def dropping(node: str, name: str) -> Callable[[Graph], Graph]:
    def change(graph: Graph) -> Graph:
        del graph[node]["inputs"][name]
        return graph
    return change


@pytest.mark.parametrize("make, node, name, kind, fragment", [
    (setting("3", "steps", "twenty"), "3", "steps", "invalid_input_type",
     "input 'steps': 'twenty' is not an INT; give a whole number from 1 to 10000"),
    (setting("3", "steps", 0), "3", "steps", "value_smaller_than_min", "0 is below the minimum 1"),
    (setting("3", "denoise", 1.5), "3", "denoise", "value_bigger_than_max", "1.5 is above the maximum 1.0"),
    (setting("3", "scheduler", "no-such-scheduler"), "3", "scheduler", "value_not_in_list",
     "'no-such-scheduler' is not available; choose one of: 'simple', 'sgm_uniform'"),
    (dropping("3", "seed"), "3", "seed", "required_input_missing", "input 'seed' is required but missing"),
    (lambda g: img2img("example.png"), "10", "image", "not_an_upload", "'example.png' is not one of your uploads"),
    (lambda g: img2img("../../../../etc/passwd"), "10", "image", "not_an_upload",
     "'../../../../etc/passwd' is a path"),
    (lambda g: img2img("/etc/passwd"), "10", "image", "not_an_upload", "'/etc/passwd' is a path"),
    (setting("9", "filename_prefix", "../../../../tmp/x"), "9", "filename_prefix", "unsafe_filename_prefix",
     "'../../../../tmp/x' is not a plain name"),
    (setting("9", "filename_prefix", "/tmp/x"), "9", "filename_prefix", "unsafe_filename_prefix",
     "'/tmp/x' is not a plain name"),
], ids=["type", "min", "max", "combo", "missing", "not-uploaded", "traversal", "absolute", "prefix-traversal",
        "prefix-absolute"])
def test_refused_up_front_with_nothing_charged_or_written(app: Flask, payer: FlaskClient,
                                                          make: Callable[[Graph], Graph], node: str, name: str,
                                                          kind: str, fragment: str) -> None:
    before = written(app, "catalogue-payer")
    graph = make(txt2img(seed=5))
    estimate = payer.post("/v1/jobs:estimate", json={"workflow": graph})
    answer = payer.post("/v1/jobs", json={"workflow": graph})
    body = answer.get_json()
    assert answer.status_code == estimate.status_code == 422, body
    assert set(body) == {"code", "status", "message", "errors"}
    assert body["message"].startswith(f"node {node} ({graph[node]['class_type']}): input '{name}'")
    assert fragment in body["message"]
    assert any(fragment in message for message in body["errors"]["workflow"][node])
    error = body["errors"]["node_errors"][node]["errors"][0]
    assert (error["type"], error["extra_info"]["input_name"]) == (kind, name)
    assert written(app, "catalogue-payer") == before  # no debit, no job, no upload


def test_someone_elses_upload_is_refused_and_your_own_runs(app: Flask, payer: FlaskClient) -> None:
    theirs = upload(new_user(app, "catalogue-other"))
    before = written(app, "catalogue-payer")
    answer = payer.post("/v1/jobs", json={"workflow": img2img(theirs["name"])})
    assert answer.status_code == 422 and "is not one of your uploads" in answer.get_json()["message"]
    assert written(app, "catalogue-payer") == before
    mine = upload(payer)
    by_name = wait_for(payer, submit(payer, img2img(mine["name"]))["id"])
    by_id = wait_for(payer, submit(payer, img2img(mine["id"]), instance="gpu1")["id"])
    assert (by_name["status"], by_id["status"]) == ("succeeded", "succeeded"), (by_name["error"], by_id["error"])
    with app.app_context():
        job = db.session.get(Job, by_id["id"])
        assert job.workflow["10"]["inputs"]["image"] == mine["name"] and job.inputs == [mine["name"]]


def test_a_graph_the_instance_still_refuses_fails_and_is_refunded_once(app: Flask) -> None:
    client = new_user(app, "catalogue-refused", credits=5)
    # A node's own VALIDATE_INPUTS refusing: nothing the published catalogue could foretell.
    graph = txt2img(seed=6, sim={"3": {"reject": "the sampler refuses this seed"}})
    job = wait_for(client, submit(client, graph)["id"])
    assert (job["status"], job["error"]["type"]) == ("failed", "prompt_rejected")
    assert job["error"]["node_errors"]["3"]["errors"][0]["type"] == "custom_validation_failed"
    with app.app_context():
        user = db.session.scalar(select(User).where(User.name == "catalogue-refused"))
        # Every other path that ends a job finds it ended and refunded: none pays back twice.
        assert credits.refund(job["id"], note="again") == 0
        db.session.commit()
        assert not transition(job["id"], JobStatus.FAILED, [JobStatus.QUEUED, JobStatus.RUNNING],
                              error={"type": "prompt_rejected"})
        assert end_orphaned(job["id"], RuntimeError("late handler"), None) is None
        entries = db.session.execute(select(LedgerEntry.kind, LedgerEntry.amount).where(
            LedgerEntry.job_id == job["id"]).order_by(LedgerEntry.id)).all()
        assert [tuple(e) for e in entries] == [("debit", -1), ("refund", 1)]
        assert credits.balance_of(user.id) == credits.ledger_sum(user.id) == 5
