"""Bad requests get a 4xx in the one error shape, with no Redis needed and no row written."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from comfyq import create_app
from comfyq.db.extensions import db
from comfyq.db.models import Job
from tests.conftest import keyed_client, offline_app, txt2img


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out", MAX_CONTENT_LENGTH=20_000)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return keyed_client(app, "svc", "service")


def assert_shape(response, code: int, fragment: str) -> None:
    body = response.get_json()
    assert response.status_code == code, body
    assert set(body) == {"code", "status", "message", "errors"}
    assert body["code"] == code and fragment in body["message"], body["message"]


@pytest.mark.parametrize("payload, code, fragment", [
    ("not json", 400, "not valid JSON"),
    ([{"template": "txt2img"}], 422, "the body must be a JSON object"),
    ("\"txt2img\"", 422, "the body must be a JSON object"),
    ("42", 422, "the body must be a JSON object"),
    ({"workflow": "text"}, 422, "workflow: must be a JSON object"),
    ({"workflow": [1, 2]}, 422, "workflow: must be a JSON object"),
    ({}, 422, "give either 'template'"),
    ({"workflow": {"1": {"inputs": {}}}}, 422, "node 1: missing 'class_type'"),
    ({"workflow": {"1": {"class_type": "SaveImage", "inputs": {"images": ["9", 0]}}}}, 422,
     "links to node '9'"),
    ({"workflow": {"1": {"class_type": "SaveImage", "inputs": {}}}, "instance": "gpu7"}, 422,
     "unknown instance 'gpu7'; known instances: gpu0"),
    ({"workflow": {"1": {"class_type": "SaveImage", "inputs": {}}}, "priority": 3}, 422,
     "priority: Unknown field"),
    ({"workflow": {}}, 422, "workflow is empty"),
])
def test_bad_submissions(client: FlaskClient, app: Flask, payload, code: int, fragment: str) -> None:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    assert_shape(client.post("/v1/jobs", data=data, content_type="application/json"), code, fragment)
    with app.app_context():
        assert db.session.query(Job).count() == 0


@pytest.mark.parametrize("body, fragment", [
    ('{"workflow": ' + "[" * 5_000 + "]" * 5_000 + "}", "nesting is too deep"),
    ('{"workflow": {"1": {"class_type": "A", "inputs": {"x": ' + "9" * 5000 + "}}}}", "digit"),
    ('{"workflow": {"1": {"class_type": "A", "inputs": {"x": NaN}}}}', "NaN is not a JSON number"),
    ('{"workflow": {"1": {"class_type": "A", "inputs": {"x": -Infinity}}}}', "-Infinity is not a JSON number"),
    ('{"workflow": {"1": {"class_type": "A", "inputs": {"x": 1e999}}}}', "1e999 is too large"),
    (b'{"workflow": "\xff\xfe"}', "not valid JSON"),
])
def test_hostile_json_is_400(client: FlaskClient, app: Flask, body, fragment: str) -> None:
    response = client.post("/v1/jobs", data=body, content_type="application/json")
    assert_shape(response, 400, fragment)
    with app.app_context():
        assert db.session.query(Job).count() == 0


@pytest.mark.parametrize("workflow, fragment", [
    (None, "workflow: Field may not be null"),
    ({"1": None}, "node 1: node must be an object"),
    ({"1": {"class_type": 5, "inputs": {}}}, "node 1: missing 'class_type'"),
    ({"1": {"class_type": "SaveImage", "inputs": {"images": [4, 0]}}}, "a link is [node_id, output_index]"),
    ({"1": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}, "links to itself"),
    ({"1": {"class_type": "A", "inputs": {"x": ["2", 0]}}, "2": {"class_type": "B", "inputs": {"y": ["1", 0]}}},
     "cycle"),
])
def test_odd_workflows_are_422(client: FlaskClient, workflow, fragment: str) -> None:
    assert_shape(client.post("/v1/jobs", json={"workflow": workflow}), 422, fragment)


def test_oversized_body_is_413(client: FlaskClient) -> None:
    graph = txt2img()
    graph["6"]["inputs"]["text"] = "x" * 30_000
    assert_shape(client.post("/v1/jobs", json={"workflow": graph}), 413, "")


def test_redis_down_is_503_and_writes_nothing(client: FlaskClient, app: Flask) -> None:
    assert_shape(client.post("/v1/jobs", json={"workflow": txt2img()}), 503, "nothing was queued")
    # A template job needs no Redis until it is enqueued: it must not stay queued.
    body = {"template": "txt2img", "params": {"prompt": "x"}}
    assert_shape(client.post("/v1/jobs", json=body), 503, "nothing was queued")
    batch = {"template": "txt2img", "params": {"prompt": "x"}, "grid": {"steps": [2, 3]}}
    assert_shape(client.post("/v1/batches", json=batch), 503, "nothing was queued")
    with app.app_context():
        jobs = db.session.query(Job).all()
        # The template job and the batch's two, kept as cancelled records, none left queued.
        assert len(jobs) == 3 and {j.status for j in jobs} == {"cancelled"}
        assert {j.error["type"] for j in jobs} == {"enqueue_failed"}


def test_huge_grid_is_refused_before_it_is_built(client: FlaskClient) -> None:
    grid = {name: list(range(300)) for name in ("steps", "cfg", "width")}
    started = time.monotonic()
    response = client.post("/v1/batches", json={"template": "txt2img", "params": {"prompt": "x"}, "grid": grid})
    assert_shape(response, 422, "the batch would make 27000000 jobs; the limit is 100")
    assert time.monotonic() - started < 2


def test_template_refs_with_odd_digits_are_404(client: FlaskClient) -> None:
    assert_shape(client.get("/v1/templates/txt2img@²"), 404, "txt2img@²")
    assert_shape(client.get("/v1/templates/nope"), 404, "nope")


def test_unknown_job_unknown_route_wrong_method(client: FlaskClient) -> None:
    assert_shape(client.get("/v1/jobs/nope"), 404, "no job 'nope'")
    assert_shape(client.post("/v1/jobs/nope/cancel"), 404, "no job 'nope'")
    assert_shape(client.get("/v1/jobs/nope/outputs/a.png"), 404, "no job 'nope'")
    assert_shape(client.get("/v2/whatever"), 404, "not found")
    assert_shape(client.delete("/v1/jobs"), 405, "not allowed")
    assert_shape(client.get("/v1/jobs?status=done"), 422, "status: Must be one of")
    assert_shape(client.get("/v1/jobs?page=0"), 422, "page:")


def test_openapi_and_docs_are_served(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/instances",
            "/healthz"} <= set(spec["paths"])
    page = client.get("/docs")
    assert page.status_code == 200 and b"swagger-ui" in page.data
    assert client.get("/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_healthz_names_the_failed_dependency(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "ok", "redis": "error: ConnectionError"}


def test_broken_template_stops_start_up_naming_the_file(tmp_path) -> None:
    from comfyq.templates import TemplateError
    from comfyq.templates.testing import sample_spec, write_template

    write_template(tmp_path / "t", "demo", sample_spec(cost="ceil(width * 2"))
    with pytest.raises(TemplateError, match="demo/spec.yaml"):
        create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db", "TEMPLATES_DIR": str(tmp_path / "t"),
                    "OUTPUT_DIR": str(tmp_path / "out"), "INPUT_DIR": str(tmp_path / "in")})
