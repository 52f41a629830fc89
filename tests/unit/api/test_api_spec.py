"""The OpenAPI document says what the API does, and the API refuses what would do nothing or lose precision."""
from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient


def error_shape(response: Any, code: int) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == code, body
    assert set(body) == {"code", "status", "message", "errors"} and body["code"] == code
    return body


@pytest.mark.parametrize("method, path, allowed", [
    ("delete", "/v1/jobs", {"GET", "POST"}),
    ("put", "/v1/jobs/abc", {"GET"}),
    ("get", "/v1/jobs/abc/cancel", {"POST"}),
    ("patch", "/v1/account/webhook", {"GET", "PUT", "DELETE"}),
    ("post", "/v1/admin/users/ada/ledger", {"GET"}),
    ("post", "/healthz", {"GET"}),
])
def test_a_wrong_method_is_405_with_allow(admin: FlaskClient, method: str, path: str, allowed: set[str]) -> None:
    response = getattr(admin, method)(path)
    body = error_shape(response, 405)
    assert set(response.headers["Allow"].split(", ")) - {"HEAD", "OPTIONS"} == allowed
    assert body["message"] == f"{method.upper()} is not allowed on {path}; use {', '.join(sorted(allowed))}"


def test_an_empty_patch_of_limits_is_refused_and_changes_nothing(admin: FlaskClient) -> None:
    admin.post("/v1/admin/users", json={"name": "ada", "role": "student", "limits": {"max_running": 2}})
    body = error_shape(admin.patch("/v1/admin/users/ada/limits", json={}), 422)
    assert "give at least one of max_running, max_waiting, rate_per_minute" in body["message"]
    shown = admin.get("/v1/admin/users").get_json()
    assert [u["limits"]["max_running"] for u in shown if u["name"] == "ada"] == [2]


@pytest.mark.parametrize("path, body, fragment", [
    ("/v1/admin/users/ada/credits", {"amount": 2.5}, "amount: Not a valid integer"),
    ("/v1/admin/users/ada/credits", {"amount": "5"}, "amount: Not a valid integer"),
    ("/v1/admin/users", {"name": "kim", "role": "student", "credits": 1.5}, "credits: Not a valid integer"),
    ("/v1/admin/users", {"name": "kim\n", "role": "student"}, "use up to 64 letters"),
])
def test_numbers_are_not_rounded_and_names_not_stretched(admin: FlaskClient, path: str, body: dict[str, Any],
                                                         fragment: str) -> None:
    admin.post("/v1/admin/users", json={"name": "ada", "role": "student"})
    assert fragment in error_shape(admin.post(path, json=body), 422)["message"]
    assert [(e["kind"], e["amount"]) for e in admin.get("/v1/admin/users/ada/ledger").get_json()["items"]] == []


def test_a_rate_of_a_fraction_is_refused_not_read_as_no_limit(admin: FlaskClient) -> None:
    admin.post("/v1/admin/users", json={"name": "ada", "role": "student"})
    body = error_shape(admin.patch("/v1/admin/users/ada/limits", json={"rate_per_minute": 0.5}), 422)
    assert "rate_per_minute: Not a valid integer" in body["message"]


def test_an_unknown_query_parameter_is_named(admin: FlaskClient) -> None:
    body = error_shape(admin.get("/v1/jobs?stauts=failed"), 422)
    assert body["message"] == "stauts: Unknown field."


def test_a_key_needs_no_body(admin: FlaskClient) -> None:
    admin.post("/v1/admin/users", json={"name": "ada", "role": "student"})
    issued = admin.post("/v1/admin/users/ada/keys")
    assert issued.status_code == 201 and issued.get_json()["label"] is None


def test_outputs_are_documented_as_images_and_streams_as_events(spec: dict[str, Any]) -> None:
    output = spec["paths"]["/v1/jobs/{job_id}/outputs/{name}"]["get"]["responses"]
    assert list(output["200"]["content"])[:4] == ["image/png", "image/jpeg", "image/webp", "image/gif"]
    assert "application/octet-stream" not in output["200"]["content"]
    assert {"200", "302", "304", "401", "404", "410"} <= set(output)
    for path in ("/v1/jobs/{job_id}/events", "/v1/events"):
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"]
        assert set(content["text/event-stream"]["schema"]["properties"]) == {"id", "event", "data", "retry"}


def test_every_operation_lists_its_errors_in_the_one_shape(spec: dict[str, Any]) -> None:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            assert "default" not in responses, (method, path)
            assert "503" in responses and ("401" in responses) == path.startswith("/v1/"), (method, path)
            assert ("404" in responses) >= ("{" in path), (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(responses), (method, path)
    jobs = spec["paths"]["/v1/jobs"]["post"]["responses"]
    assert {"402", "403", "429"} <= set(jobs) and "Retry-After" in jobs["429"]["headers"]
    assert spec["paths"]["/healthz"]["get"]["security"] == []


def test_an_empty_limits_patch_is_refused_in_the_document_too(spec: dict[str, Any]) -> None:
    body = spec["paths"]["/v1/admin/users/{name}/limits"]["patch"]["requestBody"]["content"]["application/json"]
    assert spec["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]["minProperties"] == 1
    issue = spec["paths"]["/v1/admin/users/{name}/keys"]["post"]["requestBody"]
    assert issue["required"] is False


def test_the_ledger_is_documented_as_a_page(spec: dict[str, Any]) -> None:
    ledger = spec["paths"]["/v1/admin/users/{name}/ledger"]["get"]
    assert {p["name"] for p in ledger["parameters"] if p["in"] == "query"} == {"page", "page_size"}
    page = ledger["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][page]["properties"]) == {"items", "page", "page_size", "total"}
