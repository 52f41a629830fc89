"""ComfyUI's answer shapes that several editor routes share: its error, and a JSON body read without surprises."""
from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, request

from ..errors import ComfyqError, InvalidRequest

# status → (ComfyUI-style error type, the words a student reads first)
REFUSALS = {402: ("insufficient_credits", "Not enough credits"), 403: ("forbidden", "Not allowed"),
            404: ("not_found", "Not found"), 413: ("too_large", "Too large"),
            429: ("too_many_prompts", "Too many prompts"), 503: ("unavailable", "The queue is unavailable")}


def comfy_error(kind: str, message: str, details: str = "", node_errors: dict[str, Any] | None = None,
                status: int = 400, extra_info: dict[str, Any] | None = None) -> Response:
    """Return ComfyUI's error answer: ``{"error": {type, message, details, extra_info}, "node_errors"}``."""
    body = {"error": {"type": kind, "message": message, "details": details, "extra_info": extra_info or {}},
            "node_errors": node_errors or {}}
    response = jsonify(body)
    response.status_code = status
    return response


def refusal(exc: ComfyqError) -> Response:
    """Return a comfyq refusal (caps, credits, size) in ComfyUI's error shape, with its status and a plain title."""
    kind, title = REFUSALS.get(exc.status, ("invalid_prompt", "Refused"))
    words = exc.message
    if exc.status == 402 and {"cost", "balance"} <= set(exc.errors):  # the API's words name API routes
        words = (f"this prompt costs {exc.errors['cost']} credits and you have {exc.errors['balance']}; "
                 "ask your teacher for more credits")
    response = comfy_error(kind, f"{title}: {words}", details=words, status=exc.status)
    response.headers.update(exc.headers)
    return response


def json_body(required: bool = True) -> Any:
    """Return the request's JSON body; raise InvalidRequest for one that is not JSON (an empty one: ``{}``)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise InvalidRequest("send a JSON object as the body", {"json": ["empty body"]})
        return {}
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise InvalidRequest("the body is not valid JSON", {"json": ["invalid JSON"]}) from None


def _no_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which JSON does not have."""
    raise ValueError(f"{name} is not JSON")
