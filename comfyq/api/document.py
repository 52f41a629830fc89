"""The OpenAPI document as served at ``/openapi.json``: what importers need besides the operations.

``servers`` is COMFYQ_PUBLIC_URL, or the root the request came to when it is
unset, so a tool imported from a URL calls the same host back. Both ways of
sending an API key are declared; either is enough.
"""
from __future__ import annotations

from typing import Any

import flask
from flask import Flask, current_app, request

from .errors import ComfyqApi
from .examples import ExamplesPlugin
from .openapi import ErrorsPlugin
from .operation_ids import OperationIdsPlugin

DESCRIPTION = ("comfyq job queue API. Every timestamp is ISO 8601 in UTC with microseconds and its offset: "
               "2026-12-04T14:30:52.378047+00:00. Each template also has its own run operation "
               "(POST /v1/templates/<name>/runs) whose body is the template's params.")
SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer cq_…"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "X-API-Key: cq_… (for tools that cannot send a bearer token)"},
}


class DocumentedApi(ComfyqApi):
    """The API whose document names its servers by the public URL or the request's root."""

    def _openapi_json(self) -> flask.Response:
        """Serve the document with this deployment's server URL."""
        return current_app.response_class(flask.json.dumps(with_servers(self.spec.to_dict()), indent=2),
                                          mimetype="application/json")


def with_servers(document: dict[str, Any]) -> dict[str, Any]:
    """Return ``document`` with ``servers``: COMFYQ_PUBLIC_URL, else the root of the current request."""
    base = current_app.config["PUBLIC_URL"] or request.url_root
    found = {key: value for key, value in document.items() if key != "paths"}
    # Key order as people read it: openapi, info, servers, then the rest.
    return {"openapi": found.pop("openapi"), "info": found.pop("info"),
            "servers": [{"url": base.rstrip("/") or "/", "description": "this comfyq"}],
            **found, "paths": document["paths"]}


def make_api(flask_app: Flask) -> DocumentedApi:
    """Return the flask-smorest Api of ``flask_app``: error statuses, operationIds, examples, key schemes."""
    api = DocumentedApi(flask_app, spec_kwargs={
        "info": {"description": DESCRIPTION},
        "security": [{name: []} for name in SECURITY_SCHEMES],
        "extra_plugins": [ErrorsPlugin(), OperationIdsPlugin(), ExamplesPlugin()]})
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    return api
