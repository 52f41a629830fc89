"""The editor's routes answer in ComfyUI's shapes, and bad input is a 4xx in those shapes, never a 500."""
from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from comfyq.editor import userdata
from comfyq.editor.userdata import MAX_FILE_BYTES
from tests.conftest import txt2img

ROUTES = ["/users", "/settings", "/settings/Comfy.Locale", "/userdata?dir=workflows", "/queue", "/history",
          "/history/x", "/prompt", "/object_info", "/object_info/KSampler", "/system_stats", "/embeddings", "/models",
          "/models/checkpoints", "/extensions", "/features", "/i18n", "/internal/folder_paths",
          "/experiment/models", "/workflow_templates", "/global_subgraphs", "/view?filename=a.png"]


def png(size: int = 8) -> bytes:
    """Return a small PNG image."""
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_answers_401_without_a_session_under_both_prefixes(app: Flask, route: str) -> None:
    for prefix in ("/comfy", "/comfy/api"):
        answer = app.test_client().get(prefix + route)
        assert answer.status_code == 401, (prefix + route, answer.data)
        assert answer.get_json()["code"] == 401 and "editor session" in answer.get_json()["message"]


def test_the_start_up_routes_answer_comfyuis_shapes(ada: FlaskClient) -> None:
    assert ada.get("/comfy/api/users").get_json() == {"storage": "server", "migrated": True}
    assert ada.get("/comfy/api/extensions").get_json() == [] and ada.get("/comfy/api/embeddings").get_json() == []
    assert ada.get("/comfy/api/i18n").get_json() == {}
    assert ada.get("/comfy/api/features").get_json()["max_upload_size"] > 0
    assert "checkpoints" in ada.get("/comfy/api/models").get_json()
    assert all(len(paths) == 2 for paths in ada.get("/comfy/internal/folder_paths").get_json().values())
    assert {"name": "loras", "folders": ["models/loras"]} in ada.get("/comfy/api/experiment/models").get_json()
    stats = ada.get("/comfy/api/system_stats").get_json()
    assert {"os", "python_version", "comfyui_version"} <= set(stats["system"]) and stats["devices"][0]["name"]
    assert ada.get("/comfy/api/queue").get_json() == {"queue_running": [], "queue_pending": []}
    assert ada.get("/comfy/api/history?max_items=64").get_json() == {}
    assert ada.get("/comfy/api/prompt").get_json() == {"exec_info": {"queue_remaining": 0}}
    assert ada.get("/comfy/api/object_info").status_code == 503  # no Redis here: said, not a 500
    assert ada.get("/comfy/api/history/not-a-prompt").status_code == 404
    page = ada.get("/comfy/")
    assert page.status_code == 200 and b"<title>ComfyUI</title>" in page.data


@pytest.mark.parametrize("body, kind", [
    (b"not json", "invalid_prompt"), (b"{}", "no_prompt"), (b'{"prompt": "a string"}', "invalid_prompt"),
    (b'{"prompt": {}}', "invalid_prompt"), (b"[" * 100_000, "invalid_prompt"), (b'{"prompt": NaN}', "invalid_prompt"),
])
def test_a_prompt_that_is_no_graph_gets_comfyuis_400(ada: FlaskClient, body: bytes, kind: str) -> None:
    answer = ada.post("/comfy/api/prompt", data=body, content_type="application/json")
    assert answer.status_code == 400
    error = answer.get_json()
    assert error["error"]["type"] == kind and error["error"]["message"] and error["node_errors"] == {}
    assert set(error["error"]) == {"type", "message", "details", "extra_info"}


def test_a_malformed_graph_outlines_its_bad_nodes(ada: FlaskClient) -> None:
    graph = txt2img()
    graph["3"]["inputs"]["model"] = ["99", 0]
    graph["8"]["inputs"].pop("samples")
    graph["8"]["inputs"]["vae"] = "not a link"
    del graph["6"]["class_type"]
    answer = ada.post("/comfy/api/prompt", json={"prompt": graph, "client_id": "x"})
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert {"3", "6"} <= set(body["node_errors"])
    for node in body["node_errors"].values():
        assert set(node) == {"errors", "dependent_outputs", "class_type"}
        assert all(set(e) == {"type", "message", "details", "extra_info"} for e in node["errors"])
    assert body["node_errors"]["3"]["class_type"] == "KSampler"
    assert body["node_errors"]["3"]["errors"][0]["type"] == "link_to_missing_node"
    assert body["node_errors"]["3"]["errors"][0]["extra_info"]["input_name"] == "model"


def test_a_blocklisted_node_is_refused_on_that_node(ada: FlaskClient) -> None:
    graph = {**txt2img(), "20": {"class_type": "ExecutePython", "inputs": {"code": "import os"}}}
    answer = ada.post("/comfy/api/prompt", json={"prompt": graph})
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["node_errors"]["20"]["errors"][0]["type"] == "node_blocked"
    assert "not allowed" in body["error"]["message"]


def test_an_upload_answers_comfyuis_shape_and_is_viewable(ada: FlaskClient) -> None:
    sent = ada.post("/comfy/api/upload/image", data={"image": (io.BytesIO(png()), "cat.png"), "type": "input"},
                    content_type="multipart/form-data")
    assert sent.status_code == 200
    body = sent.get_json()
    assert set(body) == {"name", "subfolder", "type"} and body["type"] == "input" and body["name"].endswith(".png")
    viewed = ada.get("/comfy/api/view", query_string={"filename": body["name"], "type": "input"})
    assert viewed.status_code == 200 and viewed.data == png()
    masked = ada.post("/comfy/api/upload/mask", content_type="multipart/form-data", data={
        "image": (io.BytesIO(png()), "mask.png"), "original_ref": f'{{"filename": "{body["name"]}"}}'})
    assert masked.status_code == 200 and masked.get_json()["name"] != body["name"]


def test_bad_uploads_and_views_are_refused_in_shape(app: Flask, ada: FlaskClient) -> None:
    app.config["MAX_UPLOAD_BYTES"] = 200
    big = ada.post("/comfy/api/upload/image", data={"image": (io.BytesIO(png(64) + b"\0" * 500), "big.png")},
                   content_type="multipart/form-data")
    assert big.status_code in (400, 413) and big.get_json()["error"]["message"]
    junk = ada.post("/comfy/api/upload/image", data={"image": (io.BytesIO(b"no image"), "a.png")},
                    content_type="multipart/form-data")
    assert junk.status_code == 400 and junk.get_json()["error"]["type"] == "invalid_image"
    assert ada.post("/comfy/api/upload/image", data={}).status_code == 400
    no_original = ada.post("/comfy/api/upload/mask", content_type="multipart/form-data", data={
        "image": (io.BytesIO(png()), "m.png"), "original_ref": "{"})
    assert no_original.status_code == 400
    assert ada.get("/comfy/api/view?filename=../etc/passwd&type=output").status_code == 400
    assert ada.get("/comfy/api/view?filename=a.png&type=elsewhere").status_code == 400
    assert ada.get("/comfy/api/view?filename=a.png&type=input").status_code == 404
    assert ada.get("/comfy/api/view?filename=a.png&subfolder=nope&type=output").status_code == 404


def test_settings_are_kept_per_student(app: Flask, ada: FlaskClient) -> None:
    assert ada.post("/comfy/api/settings/Comfy.InstalledVersion", json="1.27.10").status_code == 200
    assert ada.post("/comfy/api/settings", json={"Comfy.TutorialCompleted": True}).status_code == 200
    assert ada.get("/comfy/api/settings").get_json() == {"Comfy.InstalledVersion": "1.27.10",
                                                         "Comfy.TutorialCompleted": True}
    assert ada.get("/comfy/api/settings/Comfy.TutorialCompleted").get_json() is True
    assert ada.get("/comfy/api/settings/Comfy.Unset").get_json() is None
    assert ada.post("/comfy/api/settings", json=[1]).status_code == 422


def test_userdata_saves_lists_moves_and_deletes_a_students_workflows(ada: FlaskClient) -> None:
    listing = "/comfy/api/userdata?dir=workflows&recurse=true&split=false&full_info=true"
    assert ada.get(listing).status_code == 404  # none saved yet, as ComfyUI answers
    assert ada.get("/comfy/api/userdata/comfy.templates.json").status_code == 404
    saved = ada.post("/comfy/api/userdata/workflows%2Fa%20b.json?overwrite=false&full_info=true", data=b'{"n": 1}')
    assert saved.status_code == 200 and saved.get_json()["path"] == "workflows/a b.json"
    assert ada.post("/comfy/api/userdata/workflows%2Fa%20b.json?overwrite=false", data=b"{}").status_code == 409
    (item,) = ada.get(listing).get_json()
    assert item["path"] == "a b.json" and item["size"] == 8 and isinstance(item["modified"], int)
    assert ada.get("/comfy/api/userdata?dir=workflows").get_json() == ["a b.json"]
    assert ada.get("/comfy/api/userdata?dir=workflows/").get_json() == ["a b.json"]  # as the editor asks
    assert ada.get("/comfy/api/userdata?dir=subgraphs/&recurse=true").status_code == 404
    assert ada.get("/comfy/api/userdata/workflows%2Fa%20b.json").get_json() == {"n": 1}
    moved = ada.post("/comfy/api/userdata/workflows%2Fa%20b.json/move/workflows%2Fc.json")
    assert moved.status_code == 200 and moved.get_json() == "workflows/c.json"
    assert ada.get("/comfy/api/userdata/workflows%2Fa%20b.json").status_code == 404
    assert ada.delete("/comfy/api/userdata/workflows%2Fc.json").status_code == 204
    assert ada.get(listing).status_code == 404


@pytest.mark.parametrize("path", ["..%2Fsecret.json", "workflows%2F..%2F..%2Fx", "workflows%2F%2Fx",
                                  "a%5Cb.json", "workflows%2F.%2Fx"])
def test_userdata_paths_may_not_leave_the_students_folder(ada: FlaskClient, path: str) -> None:
    for answer in (ada.post(f"/comfy/api/userdata/{path}", data=b"x"), ada.get(f"/comfy/api/userdata/{path}"),
                   ada.delete(f"/comfy/api/userdata/{path}")):
        assert answer.status_code in (400, 404, 422), answer.data  # refused, never stored or a 500
    assert ada.get("/comfy/api/userdata?dir=..").status_code in (400, 422)


def test_saved_files_are_size_limited(ada: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = ada.post("/comfy/api/userdata/workflows%2Fbig.json", data=b"x" * (MAX_FILE_BYTES + 1))
    assert answer.status_code == 413 and "at most" in answer.get_json()["message"]
    monkeypatch.setattr(userdata, "MAX_TOTAL_BYTES", 10)
    assert ada.post("/comfy/api/userdata/workflows%2Fa.json", data=b"x" * 6).status_code == 200
    assert ada.post("/comfy/api/userdata/workflows%2Fa.json", data=b"x" * 9).status_code == 200  # replaces it
    full = ada.post("/comfy/api/userdata/workflows%2Fb.json", data=b"x" * 2)
    assert full.status_code == 413 and "in all" in full.get_json()["message"]


def test_students_never_see_each_others_files(app: Flask, service: FlaskClient, ada: FlaskClient) -> None:
    from tests.unit.editor.conftest import make_student, open_editor

    make_student(app, "bea")
    bea = open_editor(app, service, "bea")
    ada.post("/comfy/api/userdata/workflows%2Fmine.json", data=b"{}")
    ada.post("/comfy/api/settings/Comfy.Locale", json="fr")
    assert bea.get("/comfy/api/userdata/workflows%2Fmine.json").status_code == 404
    assert bea.get("/comfy/api/settings").get_json() == {}
