"""Templates through the whole stack: fill, estimate, route, run, batch, refuse."""
from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from comfyq import create_app
from comfyq.sim.process import SimProcess
from comfyq.sim.testing import txt2img, with_node_knobs
from comfyq.templates.testing import sample_spec, write_template
from tests.integration.conftest import wait_for, with_key


def png(width: int = 48, height: int = 32, color: tuple[int, ...] = (200, 30, 30, 255)) -> str:
    """Return a PNG as a data URL."""
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def post(client: FlaskClient, body: dict[str, Any], path: str = "/v1/jobs", code: int = 202) -> dict[str, Any]:
    """POST a body and check the status code."""
    response = client.post(path, json=body)
    assert response.status_code == code, response.get_json()
    return response.get_json()


def history(sim: SimProcess, prompt_id: str) -> dict[str, Any]:
    return requests.get(f"{sim.url}/history/{prompt_id}", timeout=5).json()


SMALL = {"width": 64, "height": 64, "steps": 3}


@pytest.mark.parametrize("template, params", [
    ("txt2img", {"prompt": "a lighthouse", **SMALL}),
    ("txt2img_sdxl", {"prompt": "a lighthouse", "width": 512, "height": 512, "steps": 3}),
    ("img2img", {"prompt": "as a watercolour", "image": png(), "denoise": 0.5, "steps": 3}),
    ("inpaint", {"prompt": "a red door", "image": png(), "mask": png(color=(255, 255, 255, 255)), "steps": 3}),
    ("upscale", {"image": png(40, 30), "scale": 3}),
])
def test_every_shipped_template_runs(client: FlaskClient, template: str, params: dict[str, Any]) -> None:
    job = post(client, {"template": template, "params": params})
    assert (job["template"], job["template_version"]) == (template, 1)
    assert job["cost"] >= 1 and job["soft_time_limit"] > 0
    done = wait_for(client, job["id"], timeout=60)
    assert done["status"] == "succeeded", done["error"]
    image = client.get(f"/v1/jobs/{job['id']}/outputs/{done['outputs'][0]['name']}")
    picture = Image.open(io.BytesIO(image.data))
    if template == "upscale":
        assert picture.size == (120, 90)  # 40×30 scaled 3×
    if template == "txt2img_sdxl":
        assert done["instance"] == "gpu1" and done["queue"] == "comfy.need.sdxl"  # only gpu1 offers sdxl
    assert done["progress"]["nodes_done"] == done["progress"]["nodes_total"]


def test_seed_is_recorded_and_reruns_identically(client: FlaskClient, sims: list[SimProcess]) -> None:
    first = wait_for(client, post(client, {"template": "txt2img", "params": {"prompt": "same", **SMALL}})["id"])
    seed = first["params"]["seed"]
    assert isinstance(seed, int) and first["status"] == "succeeded"
    again = wait_for(client, post(client, {"template": "txt2img", "params": dict(first["params"]),
                                           "mode": "expert"})["id"])
    assert again["params"] == first["params"]
    graphs = []
    for job in (first, again):
        sim = sims[0] if job["instance"] == "gpu0" else sims[1]
        graphs.append(history(sim, job["id"])[job["id"]]["prompt"][2])
    assert graphs[0] == graphs[1] and graphs[0]["3"]["inputs"]["seed"] == seed
    assert first["outputs"][0]["sha256"] == again["outputs"][0]["sha256"]


def test_progress_uses_the_template_labels(client: FlaskClient) -> None:
    job = post(client, {"template": "txt2img", "params": {"prompt": "slow", **SMALL, "steps": 40}})
    deadline, label = time.monotonic() + 30, None
    while label is None and time.monotonic() < deadline:
        seen = client.get(f"/v1/jobs/{job['id']}").get_json()
        label = (seen["progress"] or {}).get("label")
        assert seen["status"] in ("queued", "running", "succeeded"), seen
        if seen["status"] == "succeeded":
            label = seen["progress"]["label"]
        time.sleep(0.02)
    assert label in ("Sampling", "Decoding", "Saving")  # friendly names, not class types
    wait_for(client, job["id"])


@pytest.mark.parametrize("body, fragment, where", [
    ({"template": "nope", "params": {}}, "nope", "template"),
    ({"template": "txt2img@9", "params": {"prompt": "x"}}, "txt2img@9", "template"),
    ({"template": "txt2img", "params": {"prompt": "x", "colour": 1}}, "colour", "params"),
    ({"template": "txt2img", "params": {"prompt": "x", "steps": "many"}}, "steps", "params"),
    ({"template": "txt2img", "params": {"prompt": "x", "steps": 500}}, "steps", "params"),
    ({"template": "txt2img", "params": {"prompt": "x", "cfg": 9}}, "expert", "params"),
    ({"template": "txt2img", "params": {}}, "prompt", "params"),
    ({"template": "upscale", "params": {"image": png(2000, 2000), "scale": 8}},
     "larger than this deployment allows", "params"),
    ({"template": "upscale", "params": {"image": "data:image/png;base64,!!!"}}, "base64", "params"),
    ({"template": "upscale", "params": {"image": "data:image/png;base64,aGVsbG8="}}, "not a readable PNG, JPEG or WebP image",
     "params"),
    ({"template": "txt2img_sdxl", "params": {"prompt": "x"}, "instance": "gpu0"}, "lacks sdxl", "instance"),
])
def test_template_requests_get_field_precise_422(client: FlaskClient, body: dict[str, Any], fragment: str,
                                                  where: str) -> None:
    before = client.get("/v1/jobs?page_size=1").get_json()["total"]
    error = post(client, body, code=422)
    assert fragment in error["message"], error
    assert where in error["errors"]["json"], error
    assert client.get("/v1/jobs?page_size=1").get_json()["total"] == before


def test_estimate_creates_nothing_and_reports_guards(client: FlaskClient) -> None:
    before = client.get("/v1/jobs?page_size=1").get_json()["total"]
    ok = post(client, {"template": "txt2img", "params": {"prompt": "x", "width": 1024, "height": 1024}},
              "/v1/jobs:estimate", 200)
    assert ok["cost"] == 4 and ok["guards"] == {"pass": True, "failures": []}
    # the formula gives 160 s; COMFYQ_MAX_TIME_LIMIT (120 s in these tests) caps it, grace is 30 s
    assert ok["queue"] == "comfy" and ok["queue_position"] == 0 and ok["soft_time_limit"] == 120
    assert ok["hard_time_limit"] == 150 and sorted(ok["instances_idle"]) == ["gpu0", "gpu1"]
    bad = post(client, {"template": "upscale", "params": {"image": png(2000, 2000), "scale": 8}},
               "/v1/jobs:estimate", 200)
    assert bad["guards"]["pass"] is False
    assert "larger than this deployment allows" in bad["guards"]["failures"][0]
    raw = post(client, {"workflow": {"1": {"class_type": "EmptyLatentImage", "inputs": {}}}},
               "/v1/jobs:estimate", 422)
    assert "output node" in raw["message"] or "required" in raw["message"]
    assert client.get("/v1/jobs?page_size=1").get_json()["total"] == before


def test_estimate_counts_the_jobs_waiting_ahead(client: FlaskClient) -> None:
    blocker = post(client, {"workflow": with_node_knobs(txt2img(seed=71), "3", node_seconds=1.5), "instance": "gpu0"})
    wait_for(client, blocker["id"], {"running"})
    waiting = post(client, {"workflow": txt2img(seed=72), "instance": "gpu0"})
    asked = post(client, {"template": "txt2img", "instance": "gpu0", "params": {"prompt": "x", **SMALL}},
                 "/v1/jobs:estimate", 200)
    assert asked["queue"] == "comfy.gpu0" and asked["queue_position"] == 1
    assert asked["instances_idle"] == []  # gpu0 is busy with the blocker
    for job in (blocker, waiting):
        assert wait_for(client, job["id"])["status"] == "succeeded"


def test_batch_grid_runs_every_point(client: FlaskClient) -> None:
    batch = post(client, {"template": "txt2img", "params": {"prompt": "grid", "width": 64, "height": 64},
                          "grid": {"steps": [2, 3], "cfg": [6.0, 8.0]}, "mode": "expert"}, "/v1/batches")
    assert batch["total"] == 4 and batch["status"] in ("queued", "running")
    assert sorted((j["params"]["steps"], j["params"]["cfg"]) for j in batch["jobs"]) == [
        (2, 6.0), (2, 8.0), (3, 6.0), (3, 8.0)]
    assert len({j["params"]["seed"] for j in batch["jobs"]}) == 1  # members differ only where the grid says
    for job in batch["jobs"]:
        wait_for(client, job["id"])
    done = client.get(f"/v1/batches/{batch['id']}").get_json()
    assert done["status"] == "succeeded" and done["counts"] == {"succeeded": 4}
    assert all(len(j["outputs"]) == 1 for j in done["jobs"])


def test_batch_is_all_or_nothing(client: FlaskClient) -> None:
    before = client.get("/v1/jobs?page_size=1").get_json()["total"]
    error = post(client, {"template": "txt2img", "params": {"prompt": "x", **SMALL},
                          "variants": [{"steps": 2}, {"steps": 999}, {"steps": 3}]}, "/v1/batches", 422)
    assert error["message"].startswith("member 1 (steps=999)") and "1" in error["errors"]["json"]["members"]
    assert client.get("/v1/jobs?page_size=1").get_json()["total"] == before
    assert post(client, {"template": "txt2img", "params": {}, "variants": [{}], "grid": {"steps": [1]}},
                "/v1/batches", 422)["message"]


def test_raw_workflow_with_blocked_node_is_refused(client: FlaskClient) -> None:
    graph = {"1": {"class_type": "ExecutePython", "inputs": {"code": "import os"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    error = post(client, {"workflow": graph}, code=422)
    assert error["message"].startswith("node 1: class_type 'ExecutePython' is blocked")
    assert "1" in error["errors"]["workflow"]


def test_template_time_limit_reaches_the_task(app: Flask, tmp_path: Path, keys: dict[str, str]) -> None:
    # The graph's sampler is slowed to 0.1 s a step, so 100 steps would take 10 s.
    write_template(tmp_path, "quick", sample_spec("quick", time_limit="1 + steps / 50"),
                   with_node_knobs(txt2img(), "3", step_seconds=0.1))
    strict = with_key(create_app({**app.config, "TEMPLATES_DIR": str(tmp_path)}).test_client(), keys["svc"])
    started = time.monotonic()
    job = post(strict, {"template": "quick", "params": {"prompt": "x", "steps": 100, "size": 64}})
    assert job["soft_time_limit"] == 3.0
    done = wait_for(strict, job["id"], timeout=30)
    # The task itself carried the template's limits: soft 3 s, hard 3 + 30 s grace.
    assert done["progress"]["time_limits"] == {"soft": 3.0, "hard": 33.0}
    assert done["status"] == "timed_out" and time.monotonic() - started < 8


def test_templates_are_listed_and_described(client: FlaskClient) -> None:
    listing = client.get("/v1/templates").get_json()["templates"]
    assert [t["name"] for t in listing] == ["img2img", "inpaint", "txt2img", "txt2img_sdxl", "upscale"]
    txt2img = next(t for t in listing if t["name"] == "txt2img")
    assert txt2img["versions"] == [1] and txt2img["cost"].startswith("ceil(")
    assert txt2img["params"]["steps"]["mode"] == "novice" and txt2img["params"]["cfg"]["mode"] == "expert"
    assert txt2img["params"]["steps"]["max"] == 150
    one = client.get("/v1/templates/upscale@1").get_json()
    assert one["ref"] == "upscale@1" and "larger than this deployment allows" in " ".join(one["guards"])
    missing = client.get("/v1/templates/nope").get_json()
    assert missing["code"] == 404 and "nope" in missing["message"]


def test_versions_side_by_side(app: Flask, tmp_path: Path, keys: dict[str, str]) -> None:
    write_template(tmp_path, "demo", sample_spec("demo", version=1))
    write_template(tmp_path, "demo@2", sample_spec("demo", version=2, description="The second take."))
    client = with_key(create_app({**app.config, "TEMPLATES_DIR": str(tmp_path)}).test_client(), keys["svc"])
    newest = client.get("/v1/templates/demo").get_json()
    assert (newest["version"], newest["versions"]) == (2, [1, 2])
    first = post(client, {"template": "demo@1", "params": {"prompt": "x", "size": 64, "steps": 2}})
    latest = post(client, {"template": "demo", "params": {"prompt": "x", "size": 64, "steps": 2}})
    assert (first["template_version"], latest["template_version"]) == (1, 2)
    for job in (first, latest):
        assert wait_for(client, job["id"])["status"] == "succeeded"
