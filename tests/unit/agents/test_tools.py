"""Tool definitions: a template's params as a JSON Schema, novice or expert, and the job tools."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from comfyq.agents.tools import SEED_MAX, all_tools, input_schema, is_expert, param_schema
from comfyq.templates.store import TemplateStore

ROOT = Path(__file__).resolve().parents[3] / "templates_wf"
NOVICE = {"user": {"role": "user", "level": "novice"}}
EXPERT = {"user": {"role": "user", "level": "expert"}}


@pytest.fixture(scope="module")
def described() -> dict[str, dict[str, Any]]:
    """Every shipped template as GET /v1/templates describes it."""
    return {t.name: t.describe() for t in TemplateStore.load(ROOT).latest()}


def test_each_param_type_has_its_json_schema() -> None:
    assert param_schema({"type": "int", "min": 1, "max": 150, "default": 20, "description": "Steps."}) == {
        "type": "integer", "minimum": 1, "maximum": 150, "default": 20, "description": "Steps."}
    assert param_schema({"type": "float", "min": 0, "max": 1, "default": 0.75}) == {
        "type": "number", "minimum": 0, "maximum": 1, "default": 0.75}
    assert param_schema({"type": "enum", "choices": ["euler", "ddim"], "default": "euler"}) == {
        "type": "string", "enum": ["euler", "ddim"], "default": "euler"}
    assert param_schema({"type": "string", "max_length": 2000}) == {"type": "string", "maxLength": 2000}
    assert param_schema({"type": "bool", "default": False}) == {"type": "boolean", "default": False}
    assert param_schema({"type": "seed", "min": 0, "max": SEED_MAX, "random_when_unset": True}) == {
        "type": "integer", "minimum": 0, "maximum": SEED_MAX}
    image = param_schema({"type": "image", "description": "The picture."})
    assert image["type"] == "string" and image["description"].startswith("The picture. Give the id of an upload")


def test_a_novice_sees_novice_params_only_and_an_expert_all(described: dict[str, dict[str, Any]]) -> None:
    template = described["txt2img"]
    novice, expert = input_schema(template, False), input_schema(template, True)
    assert set(novice["properties"]) == {n for n, p in template["params"].items() if p["mode"] == "novice"}
    assert set(expert["properties"]) == set(template["params"]) and {"cfg", "sampler"} <= set(expert["properties"])
    assert novice["required"] == expert["required"] == ["prompt"] and novice["additionalProperties"] is False
    assert is_expert(EXPERT) and not is_expert(NOVICE)
    assert is_expert({"user": {"role": "service", "level": "novice"}})  # a trusted role may set every param


def test_measured_params_are_left_to_comfyq(described: dict[str, dict[str, Any]]) -> None:
    schema = input_schema(described["img2img"], True)
    assert "image" in schema["required"]
    assert not {"image_width", "image_height"} & set(schema["properties"])


def test_the_schemas_are_valid_and_accept_what_the_api_accepts(described: dict[str, dict[str, Any]]) -> None:
    for template in described.values():
        for expert in (False, True):
            schema = input_schema(template, expert)
            jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(input_schema(described["txt2img"], False))
    assert validator.is_valid({"prompt": "a cat", "width": 512, "seed": 7})
    assert not validator.is_valid({"prompt": "a cat", "width": 500})  # not a multiple of 8
    assert not validator.is_valid({"prompt": "a cat", "cfg": 7.0})  # expert-only for a novice
    assert not validator.is_valid({"width": 512})  # the prompt is required


def test_every_template_is_a_tool_then_status_and_cancel(described: dict[str, dict[str, Any]]) -> None:
    tools = all_tools(list(described.values()), NOVICE)
    assert [t.name for t in tools] == [*described, "job_status", "cancel_job"]
    txt2img = tools[list(described).index("txt2img")]
    assert txt2img.description.startswith(described["txt2img"]["description"])
    assert "txt2img@1" in txt2img.description and "credits" in txt2img.description
    assert tools[-1].input_schema["required"] == ["job_id"]
