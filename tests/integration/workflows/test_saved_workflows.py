"""Graphs as ComfyUI users have them, through the real API, workers and simulators: the API and the saved format
give the same picture, missing models are named up front, unconvertible graphs are a 422."""
from __future__ import annotations

import io
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from comfyq.workflows.published import KEY
from tests.integration.conftest import submit, wait_for, wait_until
from tests.unit.workflows.test_saved_format import node, out, slot

INVERT_API = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x3366CC}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}},
}


def invert_saved() -> dict[str, Any]:
    """The same graph as the editor saves it, with a reroute between invert and save."""
    nodes = [node(1, "EmptyImage", outputs=[out("IMAGE", "IMAGE", [1])], widgets=[64, 64, 1, 0x3366CC]),
             node(2, "ImageInvert", [slot("image", "IMAGE", 1)], [out("IMAGE", "IMAGE", [2])]),
             node(5, "Reroute", [slot("", "*", 2)], [out("", "IMAGE", [3])]),
             node(3, "SaveImage", [slot("images", "IMAGE", 3)], widgets=["inverted"])]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 5, 0, "IMAGE"], [3, 5, 0, 3, 0, "IMAGE"]]
    return {"last_node_id": 5, "last_link_id": 3, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {}, "version": 0.4}


@pytest.fixture(scope="module")
def published(app: Flask, stack_env: dict[str, str]) -> None:
    """Wait until both workers have published their catalogues."""
    rds = redis.Redis.from_url(stack_env["COMFYQ_REDIS_URL"])
    wait_until(lambda: all(rds.exists(KEY.format(name)) for name in ("gpu0", "gpu1")), 30)


def picture_of(client: FlaskClient, job: dict[str, Any]) -> Image.Image:
    """Download a job's only output and decode it."""
    (output,) = job["outputs"]
    body = client.get(f"/v1/jobs/{job['id']}/outputs/{output['name']}")
    assert body.status_code == 200 and body.data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(body.data)).convert("RGB")


def test_api_and_saved_format_give_the_same_png(client: FlaskClient, published: None) -> None:
    api_job = submit(client, INVERT_API)
    saved_job = submit(client, invert_saved())
    assert (api_job["workflow_format"], saved_job["workflow_format"]) == ("api", "saved")
    api_done, saved_done = wait_for(client, api_job["id"]), wait_for(client, saved_job["id"])
    assert api_done["status"] == saved_done["status"] == "succeeded", (api_done, saved_done)
    assert saved_done["workflow_format"] == "saved"
    api_picture, saved_picture = picture_of(client, api_done), picture_of(client, saved_done)
    assert api_picture.size == (64, 64) and api_picture.getpixel((10, 10)) == (0xCC, 0x99, 0x33)
    assert api_picture.tobytes() == saved_picture.tobytes()


def test_estimate_converts_too(client: FlaskClient, published: None) -> None:
    answer = client.post("/v1/jobs:estimate", json={"workflow": invert_saved()})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["workflow_format"] == "saved"


def test_missing_model_is_one_422_naming_file_and_node(client: FlaskClient, published: None) -> None:
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}},
             "3": {"class_type": "KSampler", "inputs": {
                 "model": ["4", 0], "seed": 1, "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                 "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0], "denoise": 1.0}},
             "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
             "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}}
    answer = client.post("/v1/jobs", json={"workflow": graph})
    body = answer.get_json()
    assert answer.status_code == 422 and set(body) == {"code", "status", "message", "errors"}, body
    assert "missing.safetensors" in body["message"] and "node 4 (CheckpointLoaderSimple)" in body["message"]
    (missing,) = body["errors"]["missing_models"]
    assert missing["file"] == "missing.safetensors" and [n["node"] for n in missing["nodes"]] == ["4"]


def test_unconvertible_saved_graph_is_a_422_naming_the_node(client: FlaskClient, published: None) -> None:
    graph = invert_saved()
    graph["nodes"][1]["type"] = "NotInstalledAnywhere"
    answer = client.post("/v1/jobs", json={"workflow": graph})
    body = answer.get_json()
    assert answer.status_code == 422, body
    assert body["message"].startswith("saved-format graph: node 2 (NotInstalledAnywhere)")
    assert body["errors"]["node_errors"]["2"]["errors"][0]["type"] == "class_not_installed"


def test_saved_graph_before_any_catalogue_is_a_503_that_queues_nothing(client: FlaskClient, published: None,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from comfyq.submission import planning

    def job_ids() -> set[str]:
        return {job["id"] for job in client.get("/v1/jobs?page_size=100").get_json()["items"]}

    before = job_ids()
    monkeypatch.setattr(planning, "_catalogues", lambda candidates: {})
    answer = client.post("/v1/jobs", json={"workflow": invert_saved()})
    body = answer.get_json()
    assert answer.status_code == 503 and "no instance has published its node catalogue yet" in body["message"]
    assert job_ids() == before
