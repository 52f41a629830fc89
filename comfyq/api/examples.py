"""Examples of request and response bodies in the OpenAPI document, by operationId.

Importers show them beside the fields and use them to guess a tool's output;
a test checks each against its schema. Bodies whose view already gives an
example (``@bp.arguments(..., example=...)``) keep it.
"""
from __future__ import annotations

from typing import Any

from apispec import BasePlugin

from .fields import TIMESTAMP_EXAMPLE

JOB_ID = "6c1f0b8e2a4d4f0c9b7e5a3d1c2b4a69"
_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
QUEUED_JOB: dict[str, Any] = {
    "id": JOB_ID, "status": "queued", "template": "txt2img", "template_version": 1, "workflow_format": None,
    "params": {"prompt": "a lighthouse at dusk", "negative": "blurry, lowres, watermark, text", "width": 512,
               "height": 512, "steps": 4, "cfg": 7.0, "sampler": "euler", "scheduler": "normal", "seed": 1234,
               "batch_size": 1, "checkpoint": "sd15.safetensors"},
    "cost": 1, "soft_time_limit": 60.0, "batch_id": None, "queue": "comfy", "instance": None, "worker": None,
    "attempts": 0, "instance_requested": None, "webhook": None, "queue_position": 0,
    "estimated_start": TIMESTAMP_EXAMPLE, "progress": None, "error": None, "created_at": TIMESTAMP_EXAMPLE,
    "started_at": None, "finished_at": None, "outputs": [],
}
SUCCEEDED_JOB: dict[str, Any] = {
    **QUEUED_JOB, "status": "succeeded", "instance": "gpu0", "worker": "gpu0@host", "attempts": 1,
    "queue_position": None, "estimated_start": None, "started_at": TIMESTAMP_EXAMPLE,
    "finished_at": TIMESTAMP_EXAMPLE,
    "progress": {"node": "9", "node_type": "SaveImage", "label": "Saving", "value": 1, "max": 1, "fraction": 1.0,
                 "nodes_done": 7, "nodes_total": 7},
    "outputs": [{"name": "comfyq_00001_.png", "node_id": "9", "kind": "output", "content_type": "image/png",
                 "size": 412733, "sha256": _SHA, "expired": False,
                 "url": f"https://comfyq.example.org/v1/jobs/{JOB_ID}/outputs/comfyq_00001_.png"}],
}
ESTIMATE = {"template": "txt2img", "template_version": 1, "params": QUEUED_JOB["params"], "workflow_format": None,
            "cost": 1, "balance": 99, "soft_time_limit": 60.0, "hard_time_limit": 90.0, "queue": "comfy",
            "queue_position": 0, "estimated_start": TIMESTAMP_EXAMPLE, "instances_idle": ["gpu0"], "guards": {}}

# operationId → {"request": body} and/or {"responses": {status: body}}
EXAMPLES: dict[str, dict[str, Any]] = {
    "submitJob": {"responses": {"202": QUEUED_JOB}},
    "runTemplate": {"responses": {"202": QUEUED_JOB}},
    "getJob": {"responses": {"200": SUCCEEDED_JOB}},
    "cancelJob": {"responses": {"200": {**QUEUED_JOB, "status": "cancelled", "queue_position": None,
                                        "estimated_start": None, "finished_at": TIMESTAMP_EXAMPLE}}},
    "listJobs": {"responses": {"200": {"items": [SUCCEEDED_JOB], "page": 1, "page_size": 20, "total": 1}}},
    "estimateJob": {"responses": {"200": ESTIMATE}},
    "issueKey": {"request": {"label": "dify"}},
    "changeCredits": {"request": {"amount": 50, "kind": "grant", "note": "spring term"}},
    "setLimits": {"request": {"max_running": 2, "rate_per_minute": 30}},
}


def _json(where: dict[str, Any]) -> dict[str, Any] | None:
    """Return the application/json entry of a request body or a response, if it has one."""
    content = where.get("content") if isinstance(where, dict) else None
    return content.get("application/json") if isinstance(content, dict) else None


class ExamplesPlugin(BasePlugin):
    """Add EXAMPLES to each operation's JSON bodies; runs after the operationIds are set."""

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        """Set the examples of every operation of ``path`` that the table names."""
        for operation in (operations or {}).values():
            known = EXAMPLES.get(operation.get("operationId", ""), {})
            body = _json(operation.get("requestBody", {}))
            if "request" in known and body is not None:
                body.setdefault("example", known["request"])
            for status, example in known.get("responses", {}).items():
                answer = operation.get("responses", {}).get(status, operation.get("responses", {}).get(int(status)))
                media = _json(answer) if isinstance(answer, dict) else None
                if media is not None:
                    media.setdefault("example", example)
