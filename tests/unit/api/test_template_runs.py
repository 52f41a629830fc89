"""Each template's run operation: a body schema built from its params, checked like POST /v1/jobs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from comfyq.api.template_docs import body_schema, operation_id
from comfyq.api.template_runs import params_and_mode
from tests.conftest import keyed_client, offline_app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out")


@pytest.fixture
def txt2img_body(app: Flask) -> dict[str, Any]:
    spec = keyed_client(app).get("/openapi.json").get_json()
    return spec["paths"]["/v1/templates/txt2img/runs"]["post"]["requestBody"]


def novice(app: Flask) -> FlaskClient:
    """Return a client of a novice student (expert params are not theirs to set)."""
    from comfyq.accounts import users

    with app.app_context():
        key = users.issue_key(users.create_user("kim", "student", "novice"))[1]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def error(response: Any, code: int) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == code, body
    assert set(body) == {"code", "status", "message", "errors"}
    return body


def test_the_body_schema_is_the_templates_params(txt2img_body: dict[str, Any]) -> None:
    schema = txt2img_body["content"]["application/json"]["schema"]
    assert txt2img_body["required"] is True and schema["required"] == ["prompt"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert set(props) == {"prompt", "negative", "width", "height", "steps", "cfg", "sampler", "scheduler", "seed",
                          "batch_size", "checkpoint"}
    assert props["prompt"] == {"type": "string", "maxLength": 2000, "description": "What the picture shows.",
                               "x-comfyq-mode": "novice"}
    assert props["steps"] == {"type": "integer", "minimum": 1, "maximum": 150, "default": 20, "nullable": True,
                              "description": "Sampling steps; more is slower and often finer.",
                              "x-comfyq-mode": "novice"}
    assert props["width"]["multipleOf"] == 8 and props["cfg"]["type"] == "number"
    assert props["sampler"]["enum"][:2] == ["euler", "euler_ancestral"] and props["sampler"]["default"] == "euler"
    assert props["sampler"]["description"].startswith("Expert: ") and props["sampler"]["x-comfyq-mode"] == "expert"
    assert props["seed"]["maximum"] == 2**64 - 1 and "default" not in props["seed"]


def test_measured_params_are_read_only_and_images_say_what_they_take(app: Flask) -> None:
    img2img = app.extensions["templates"].get("img2img")
    schema = body_schema(img2img)
    measured = {name for name, prop in schema["properties"].items() if prop.get("readOnly")}
    assert measured == set(img2img.measured) and measured
    assert not measured & set(schema.get("required", []))
    assert "data: URL" in schema["properties"]["image"]["description"]


@pytest.mark.parametrize("name, expected", [("txt2img", "runTxt2img"), ("txt2img_sdxl", "runTxt2imgSdxl"),
                                            ("face-fix", "runFaceFix"), ("x", "runX")])
def test_operation_ids_are_camel_case(name: str, expected: str) -> None:
    assert operation_id(name) == expected


def test_expert_params_at_their_default_keep_a_request_novice(app: Flask) -> None:
    template = app.extensions["templates"].get("txt2img")
    body = {"prompt": "a cat", "steps": 4, "sampler": "euler", "cfg": 7, "seed": None}
    assert params_and_mode(template, body) == ({"prompt": "a cat", "steps": 4, "seed": None}, "novice")
    assert params_and_mode(template, dict(body, cfg=8))[1] == "expert"
    assert params_and_mode(template, dict(body, sampler=3)) == ({"prompt": "a cat", "steps": 4, "sampler": 3,
                                                                 "seed": None}, "expert")


def test_an_unknown_template_is_404(app: Flask) -> None:
    body = error(keyed_client(app).post("/v1/templates/nope/runs", json={"prompt": "x"}), 404)
    assert "no such template; known templates: img2img" in body["message"]


@pytest.mark.parametrize("body, code, message", [
    ({"prompt": "a cat", "steps": 500}, 422, "steps: must be at most 150"),
    ({"steps": 4}, 422, "prompt: is required"),
    ({"prompt": "a cat", "stepz": 4}, 422, "stepz: unknown param; this template takes: prompt, negative"),
    ({"prompt": "a cat", "sampler": "nope"}, 422, "sampler: must be one of: euler"),
    ({"prompt": "a cat", "scheduler": None}, 422, "scheduler: must be one of: normal, karras"),
    ([1, 2], 422, "the body must be a JSON object of named fields"),
])
def test_bad_params_are_422_naming_the_field(app: Flask, body: Any, code: int, message: str) -> None:
    found = error(keyed_client(app).post("/v1/templates/txt2img/runs", json=body), code)
    assert message in found["message"]


def test_a_novice_may_not_change_an_expert_param(app: Flask) -> None:
    body = error(novice(app).post("/v1/templates/txt2img/runs", json={"prompt": "a cat", "cfg": 9}), 403)
    assert "novice account may only set novice parameters" in body["message"]
