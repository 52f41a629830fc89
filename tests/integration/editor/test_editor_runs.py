"""The editor's routes through the real stack: a run, its history and images, ownership, interrupt."""
from __future__ import annotations

import io
import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import txt2img
from tests.integration.conftest import wait_until
from tests.integration.editor.conftest import student

QUICK = {"3": {"step_seconds": 0.05}}
EDITOR_GRAPH = {"last_node_id": 9, "nodes": [], "links": [], "version": 0.4}  # the editor's own form of the graph


def run(browser: FlaskClient, graph: dict[str, Any]) -> str:
    """Post a graph as the editor does; return its prompt id."""
    answer = browser.post("/comfy/api/prompt", json={"client_id": "tab1", "prompt": graph,
                                                     "extra_data": {"extra_pnginfo": {"workflow": EDITOR_GRAPH}}})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
    assert isinstance(body["number"], (int, float))
    return str(body["prompt_id"])


def finished(browser: FlaskClient, prompt_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the prompt is in the student's history; return its entry."""
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(browser.get(f"/comfy/api/history/{prompt_id}").get_json())
        return bool(found)

    wait_until(done, timeout)
    return found[prompt_id]


def test_a_prompt_runs_and_its_history_queue_and_images_speak_comfyui(app: Flask) -> None:
    ada = student(app, "ed-ada")
    prompt_id = run(ada, txt2img(seed=1, sim=QUICK))
    queue = ada.get("/comfy/api/queue").get_json()
    assert set(queue) == {"queue_running", "queue_pending"}
    for item in queue["queue_running"] + queue["queue_pending"]:
        assert len(item) == 5 and item[1] == prompt_id and item[4] == ["9"]
    entry = finished(ada, prompt_id)
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_success"]
    assert entry["prompt"][1] == prompt_id
    assert entry["prompt"][3] == {"client_id": "tab1", "extra_pnginfo": {"workflow": EDITOR_GRAPH}}  # to load again
    (image,) = entry["outputs"]["9"]["images"]
    assert image["type"] == "output" and image["subfolder"] == prompt_id
    viewed = ada.get("/comfy/api/view", query_string={**image, "rand": "0.5"})
    assert viewed.status_code == 200 and viewed.data[:8] == b"\x89PNG\r\n\x1a\n"
    listing = ada.get("/comfy/api/history?max_items=64").get_json()
    assert prompt_id in listing and listing[prompt_id]["outputs"] == entry["outputs"]
    assert ada.get("/comfy/api/prompt").get_json() == {"exec_info": {"queue_remaining": 0}}


def test_another_students_prompt_is_not_found_anywhere(app: Flask) -> None:
    ada, bea = student(app, "ed-own-a"), student(app, "ed-own-b")
    prompt_id = run(ada, txt2img(seed=2, sim=QUICK))
    image = finished(ada, prompt_id)["outputs"]["9"]["images"][0]
    assert bea.get(f"/comfy/api/history/{prompt_id}").status_code == 404
    assert bea.get("/comfy/api/view", query_string=image).status_code == 404
    assert bea.post("/comfy/api/interrupt", json={"prompt_id": prompt_id}).status_code == 404
    assert bea.post("/comfy/api/queue", json={"delete": [prompt_id]}).status_code == 404
    assert prompt_id not in bea.get("/comfy/api/history").get_json()
    assert ada.get("/comfy/api/view", query_string=image).status_code == 200  # still the owner's


def test_interrupt_cancels_the_students_running_prompt_and_delete_removes_a_waiting_one(app: Flask) -> None:
    cara = student(app, "ed-cara", max_running=1)
    slow = run(cara, txt2img(seed=3, sim={"3": {"step_seconds": 2}}, steps=20))
    waiting = run(cara, txt2img(seed=4, sim=QUICK))  # cara runs one at a time: this one waits
    wait_until(lambda: [i[1] for i in cara.get("/comfy/api/queue").get_json()["queue_running"]] == [slow], 30)
    assert cara.post("/comfy/api/queue", json={"delete": [waiting]}).status_code == 200
    assert cara.post("/comfy/api/interrupt", json={}).status_code == 200
    entry = finished(cara, slow)
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert cara.get(f"/comfy/api/history/{waiting}").get_json() == {}  # removed before it ran: no history
    queue = cara.get("/comfy/api/queue").get_json()
    assert queue == {"queue_running": [], "queue_pending": []}


def test_the_catalogue_routes_answer_from_a_published_catalogue(app: Flask) -> None:
    dora = student(app, "ed-dora")
    deadline = time.monotonic() + 60
    while (info := dora.get("/comfy/api/object_info")).status_code != 200:  # a worker publishes it on start
        assert time.monotonic() < deadline, info.get_json()
        time.sleep(0.2)
    catalogue = info.get_json()
    assert {"KSampler", "SaveImage", "CheckpointLoaderSimple"} <= set(catalogue)
    assert catalogue["KSampler"]["input"]["required"]["steps"][0] == "INT"
    assert set(dora.get("/comfy/api/object_info/KSampler").get_json()) == {"KSampler"}
    assert "sd15.safetensors" in dora.get("/comfy/api/models/checkpoints").get_json()
    stats = dora.get("/comfy/api/system_stats").get_json()
    assert {"os", "python_version", "comfyui_version"} <= set(stats["system"]) and stats["devices"]


def test_an_uploaded_image_feeds_load_image_and_another_student_cannot_load_it(app: Flask) -> None:
    ella, finn = student(app, "ed-ella"), student(app, "ed-finn")
    picture = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(picture, "PNG")
    sent = ella.post("/comfy/api/upload/image", content_type="multipart/form-data",
                     data={"image": (io.BytesIO(picture.getvalue()), "blue.png"), "overwrite": "true"})
    assert sent.status_code == 200
    name = sent.get_json()["name"]
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "loaded"}}}
    entry = finished(ella, run(ella, graph))
    assert entry["status"]["status_str"] == "success" and entry["outputs"]["2"]["images"]
    refused = finn.post("/comfy/api/prompt", json={"prompt": graph})
    assert refused.status_code == 400 and "1" in refused.get_json()["node_errors"]
    assert finn.get("/comfy/api/view", query_string={"filename": name, "type": "input"}).status_code == 404


def test_comfyqs_refusals_come_in_comfyuis_shape_with_plain_words(app: Flask) -> None:
    broke = student(app, "ed-broke", credits=0)
    refused = broke.post("/comfy/api/prompt", json={"prompt": txt2img(seed=5, sim=QUICK)})
    assert refused.status_code == 402
    error = refused.get_json()["error"]
    assert error["type"] == "insufficient_credits" and error["message"].startswith("Not enough credits: ")
    assert "you have 0" in error["message"] and "ask your teacher" in error["message"]
    assert "/v1/" not in error["message"]  # no API routes in a student's words
    hasty = student(app, "ed-hasty", rate_per_minute=1)
    run(hasty, txt2img(seed=6, sim=QUICK))
    again = hasty.post("/comfy/api/prompt", json={"prompt": txt2img(seed=7, sim=QUICK)})
    assert again.status_code == 429 and again.headers["Retry-After"]
    assert again.get_json()["error"]["message"].startswith("Too many prompts: ")
    assert again.get_json()["node_errors"] == {}
