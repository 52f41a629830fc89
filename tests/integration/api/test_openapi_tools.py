"""A low-code tool's view: from the OpenAPI document alone, find the txt2img tool, fill its form, run it.

The test knows comfyq only as an importer does: the document's URL, an API
key and the name of the tool it wants. Everything else (server, path, auth
header, fields, their limits and defaults, how to read the job back) comes
from the document, against the real stack: `comfyq api`, Redis, workers and
simulated ComfyUI instances.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import requests
from openapi_spec_validator import validate

from tests.integration.conftest import api_server

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled"}


@pytest.fixture(scope="module")
def server(stack_env: dict[str, str], workers: dict[str, Any], keys: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_server(stack_env, tmp_path_factory.mktemp("api") / "api.log") as url:
        yield url


def find(document: dict[str, Any], operation_id: str) -> tuple[str, str, dict[str, Any]]:
    """Return (method, path, operation) of the operation named ``operation_id``."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return method, path, operation
    raise AssertionError(f"no operation {operation_id} in the document")


def auth_header(document: dict[str, Any], key: str) -> dict[str, str]:
    """Return the header the document's first header-borne API key scheme asks for."""
    for requirement in document["security"]:
        scheme = document["components"]["securitySchemes"][next(iter(requirement))]
        if scheme["type"] == "apiKey" and scheme["in"] == "header":
            return {scheme["name"]: key}
    raise AssertionError("no header API key scheme")


def fill(schema: dict[str, Any]) -> dict[str, Any]:
    """Fill a form as a hurried user does: required fields, integers that have a default at their least, enums as is."""
    body: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        if field.get("readOnly"):
            continue
        if "enum" in field:
            body[name] = field.get("default", field["enum"][0])
        elif field["type"] == "integer" and "default" in field and "minimum" in field:
            step = field.get("multipleOf", 1)
            body[name] = -(-field["minimum"] // step) * step
        elif name in schema.get("required", []):
            assert field["type"] == "string", field
            body[name] = "a lighthouse at dusk"[:field.get("maxLength")]
    return body


def test_a_tool_built_from_the_document_runs_txt2img(server: str, keys: dict[str, str]) -> None:
    document = requests.get(f"{server}/openapi.json", timeout=30).json()
    validate(document)
    base = document["servers"][0]["url"]
    assert base == server  # no COMFYQ_PUBLIC_URL: the root the document was read from
    headers = auth_header(document, keys["svc"])

    method, path, operation = find(document, "runTxt2img")
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    body = fill(schema)
    assert set(schema["required"]) <= set(body) and body["steps"] == 1 and body["width"] == 64
    answer = requests.request(method, base + path, json=body, headers=headers, timeout=30)
    assert str(answer.status_code) in operation["responses"] and answer.status_code < 300, answer.text
    job = answer.json()

    method, path, _ = find(document, "getJob")
    deadline = time.monotonic() + 120
    while job["status"] not in TERMINAL:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = requests.request(method, base + path.replace("{job_id}", job["id"]), headers=headers,
                               timeout=30).json()
    assert job["status"] == "succeeded", job
    assert job["template"] == "txt2img" and job["params"]["steps"] == 1 and job["params"]["prompt"] == body["prompt"]
    picture = requests.get(job["outputs"][0]["url"], headers=headers, timeout=30)
    assert picture.status_code == 200 and picture.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_field_is_a_422_in_the_one_error_shape(server: str, keys: dict[str, str]) -> None:
    document = requests.get(f"{server}/openapi.json", timeout=30).json()
    method, path, operation = find(document, "runTxt2img")
    answer = requests.request(method, document["servers"][0]["url"] + path, json={"prompt": "x", "steps": 0},
                              headers=auth_header(document, keys["svc"]), timeout=30)
    assert str(answer.status_code) in operation["responses"] and answer.status_code == 422
    assert answer.json() == {"code": 422, "status": "Unprocessable Entity", "message": "steps: must be at least 1",
                             "errors": {"json": {"steps": ["must be at least 1"]}}}
