"""What the OpenAPI document adds to flask-smorest's: every error an operation answers, and bodies it refuses.

An apispec plugin, so it sees each operation as flask-smorest hands it over:
it declares the error statuses (all in the one error shape) that the route
can answer, so the document lists every status the API gives and nothing
else; and a schema whose ``Meta.min_properties`` is set says so as
``minProperties``.
"""
from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from apispec import BasePlugin

# Statuses only some operations answer, besides those every operation of their kind does (see error_statuses).
SPECIAL: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/v1/jobs"): (402, 403, 429),  # balance, role or level, waiting cap or rate
    ("post", "/v1/batches"): (402, 403, 429),
    ("post", "/v1/jobs:estimate"): (403,),
    ("post", "/v1/jobs/{job_id}/cancel"): (409,),  # ended already
    ("get", "/v1/jobs/{job_id}/outputs/{name}"): (410, 416),  # expired; a Range past the end of the file
    ("post", "/v1/uploads"): (404,),  # a mask's image
    ("post", "/v1/admin/users"): (404, 409),  # the teacher named; the name is taken
    ("post", "/v1/admin/users/{name}/credits"): (409,),
    ("post", "/v1/editor-sessions"): (403, 404),  # a caller that may not; no such user (or not their student)
    ("get", "/v1/editor-sessions"): (403, 404),
    ("delete", "/v1/editor-sessions/{session_id}"): (403,),  # its student was disabled  # below zero or past the most a balance holds
}
SUBMITS = (402, 403, 429)  # a template run (generic or one template's own) is a submission like POST /v1/jobs
RUNS = re.compile(r"^/v1/templates/[^/]+/runs$")
ADMIN_ONLY = ("/v1/admin/", "/v1/instances")  # 403 to other roles (instances: admins and services)
OPEN = ("/healthz",)  # no API key needed
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"},
                               "description": "seconds until a submission is counted again (rate limit only)"}}


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """Return the error statuses an operation can answer."""
    found = {503}  # the database (or Redis) is down: nothing was written
    if path.startswith("/v1/"):
        found.add(401)
    if path.startswith(ADMIN_ONLY):
        found.add(403)
    if "{" in path:
        found.add(404)
    if "requestBody" in operation:
        found |= {400, 413, 422}  # malformed body, body over COMFYQ_MAX_BODY_BYTES, invalid field
    if any(p.get("in") == "query" for p in operation.get("parameters", []) if isinstance(p, dict)):
        found.add(422)
    if method == "post" and RUNS.match(path):
        found |= set(SUBMITS)
    return found | set(SPECIAL.get((method, path), ()))


class ErrorsPlugin(BasePlugin):
    """Declare every error an operation answers; carry ``Meta.min_properties`` into request schemas."""

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        """Add the error responses of each operation of ``path``, in the one error shape."""
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            declared = {str(code) for code in responses}  # flask-smorest's keys are ints, the manual doc's strings
            for status in sorted(error_statuses(method, path or "", operation)):
                if str(status) not in declared:
                    responses[str(status)] = HTTPStatus(status).name
            if "429" in responses and isinstance(responses["429"], str):
                responses["429"] = {"description": "a limit of yours is reached: the waiting cap or the rate",
                                    "content": {"application/json": {"schema": "Error"}}, "headers": RETRY_AFTER}
            if path in OPEN:
                operation["security"] = []

    def schema_helper(self, name: str, definition: dict[str, Any], **kwargs: Any) -> dict[str, Any] | None:
        """Return ``minProperties`` for a schema that refuses fewer fields (an empty PATCH changes nothing)."""
        schema = kwargs.get("schema")
        least = getattr(getattr(schema, "Meta", None), "min_properties", None)
        return {"minProperties": least} if least else None
