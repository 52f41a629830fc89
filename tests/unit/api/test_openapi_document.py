"""The OpenAPI document is valid, names every operation once, shows examples that fit, and tells tools where to call."""
from __future__ import annotations

from typing import Any, Iterator

from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from comfyq.api.operation_ids import OPERATION_IDS
from tests.conftest import keyed_client

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def resolved(spec: dict[str, Any], schema: Any) -> Any:
    """Return ``schema`` with every local $ref replaced by what it names."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return resolved(spec, spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
        return {key: resolved(spec, value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [resolved(spec, item) for item in schema]
    return schema


def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.0")


def test_every_operation_has_a_unique_operation_id_from_the_table(spec: dict[str, Any]) -> None:
    ids = [(operation.get("operationId"), method, path) for method, path, operation in operations(spec)]
    assert [(m, p) for i, m, p in ids if not i] == []
    names = [i for i, _, _ in ids]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    documented = {(m, p): i for i, m, p in ids}
    assert {key: documented.get(key) for key in OPERATION_IDS} == OPERATION_IDS  # no stale entry, none renamed
    runs = {i for i, m, p in ids if p.startswith("/v1/templates/") and p.endswith("/runs") and "{" not in p}
    assert runs == {"runImg2img", "runInpaint", "runTxt2img", "runTxt2imgSdxl", "runUpscale"}


def test_every_operation_is_tagged_and_summarised(spec: dict[str, Any]) -> None:
    declared = {tag["name"] for tag in spec["tags"]}
    for method, path, operation in operations(spec):
        assert operation["tags"] and set(operation["tags"]) <= declared, (method, path)
        assert operation.get("summary"), (method, path)


def test_every_json_body_has_an_example_and_every_example_fits_its_schema(spec: dict[str, Any]) -> None:
    checked = 0
    for method, path, operation in operations(spec):
        media = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
        if media is not None:
            assert "example" in media, (method, path)
        answers = [(status, answer.get("content", {}).get("application/json"))
                   for status, answer in operation["responses"].items() if isinstance(answer, dict)]
        for where, found in [("request", media), *answers]:
            if found is not None and "example" in found:
                errors = list(OAS30Validator(resolved(spec, found["schema"])).iter_errors(found["example"]))
                assert not errors, (method, path, where, [e.message for e in errors])
                checked += 1
    assert checked >= 25


def test_a_job_submission_answer_has_an_example(spec: dict[str, Any]) -> None:
    for path, method, status in (("/v1/jobs", "post", "202"), ("/v1/jobs/{job_id}", "get", "200"),
                                 ("/v1/templates/txt2img/runs", "post", "202")):
        example = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["example"]
        assert example["template"] == "txt2img" and example["status"] in ("queued", "succeeded")


def test_servers_is_the_public_url_or_the_request_root(app: Flask, admin: FlaskClient) -> None:
    shown = admin.get("/openapi.json", base_url="https://gpu.example.org:8443/").get_json()
    assert shown["servers"][0]["url"] == "https://gpu.example.org:8443"
    app.config["PUBLIC_URL"] = "https://comfyq.example.org/queue"
    assert admin.get("/openapi.json").get_json()["servers"][0]["url"] == "https://comfyq.example.org/queue"


def test_both_ways_of_sending_a_key_are_declared_and_work(app: Flask, spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert spec["security"] == [{"apiKey": []}, {"apiKeyHeader": []}]
    assert schemes["apiKey"] == {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer cq_…"}
    header = schemes["apiKeyHeader"]
    assert (header["type"], header["in"]) == ("apiKey", "header")
    key = keyed_client(app, "ada", "user").environ_base["HTTP_AUTHORIZATION"].split()[1]
    bare = app.test_client()
    assert bare.get("/v1/account", headers={header["name"]: key}).get_json()["user"]["name"] == "ada"
    assert bare.get("/v1/account").status_code == 401
