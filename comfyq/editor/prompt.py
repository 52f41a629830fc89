"""``POST /prompt``: the student's graph becomes a comfyq job, refused in ComfyUI's error shape.

The graph goes the way of ``POST /v1/jobs`` with a raw workflow: the rate
limit, validation, the node blocklist, caps, fair share and credits. Opening the editor for a
student (an editor session) is what allows them raw workflows here, whatever
``COMFYQ_RAW_WORKFLOW_ROLES`` says for ``/v1``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from ..accounts.ratelimit import check_rate
from ..errors import ComfyqError, InvalidRequest
from ..jobs.machine import JobStatus
from ..submission.accept import submit_job
from ..workflows.node_errors import WorkflowInvalid
from ..workflows.safety import NodeRefused
from .auth import current_student, require_student
from .history import keep_extra_data, number_of, own_jobs
from .shapes import comfy_error, json_body, refusal

bp = Blueprint("comfy_prompt", __name__)
bp.before_request(require_student)
ACTIVE = (JobStatus.PENDING.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def node_errors_of(exc: InvalidRequest, prompt: dict[str, Any]) -> dict[str, Any]:
    """Return ComfyUI's ``node_errors`` for a refused graph: per node its errors and class."""
    found: dict[str, Any] = {}
    for node_id, info in (exc.errors.get("node_errors") or {}).items():
        found[node_id] = {"errors": [{"type": e["type"], "message": e["message"], "details": e["message"],
                                      "extra_info": e.get("extra_info") or {}} for e in info["errors"]],
                          "dependent_outputs": [], "class_type": info.get("class_type")}
    if isinstance(exc, NodeRefused):
        for node_id, reasons in (exc.errors.get("workflow") or {}).items():
            node = prompt.get(node_id)
            found[node_id] = {"errors": [{"type": "node_blocked", "message": reason, "details": reason,
                                          "extra_info": {}} for reason in reasons], "dependent_outputs": [],
                              "class_type": node.get("class_type") if isinstance(node, dict) else None}
    return found


def refused_graph(exc: InvalidRequest, prompt: dict[str, Any]) -> Response:
    """Answer a graph that cannot run: 400 with ComfyUI's error and per-node ``node_errors``."""
    node_errors = node_errors_of(exc, prompt)
    if isinstance(exc, NodeRefused):
        return comfy_error("prompt_outputs_failed_validation", "This workflow uses a node that is not allowed here",
                           exc.message, node_errors)
    if node_errors:
        return comfy_error("prompt_outputs_failed_validation", "Prompt outputs failed validation", exc.message,
                           node_errors)
    return comfy_error("invalid_prompt", exc.message, exc.message)


@bp.route("/prompt", methods=["POST"])
def post_prompt() -> Response:
    """Queue the student's graph; answer ``{prompt_id, number, node_errors}`` or ComfyUI's error shape."""
    try:
        body = json_body()
    except InvalidRequest as exc:
        return comfy_error("invalid_prompt", exc.message)
    if not isinstance(body, dict) or "prompt" not in body:
        return comfy_error("no_prompt", "No prompt provided")
    prompt = body["prompt"]
    if not isinstance(prompt, dict):
        return comfy_error("invalid_prompt", "the prompt must be an object of node id → node")
    try:
        check_rate(current_student())
        job = submit_job({"workflow": prompt}, current_student(), raw_granted=True)
    except (WorkflowInvalid, NodeRefused) as exc:
        return refused_graph(exc, prompt)
    except InvalidRequest as exc:
        return comfy_error("invalid_prompt", exc.message, exc.message)
    except ComfyqError as exc:
        return refusal(exc)
    keep_extra_data(job.id, body.get("client_id"), body.get("extra_data"))
    return jsonify({"prompt_id": job.id, "number": number_of(job), "node_errors": {}})


@bp.route("/prompt", methods=["GET"])
def get_prompt() -> dict[str, Any]:
    """Answer ``{"exec_info": {"queue_remaining"}}``: the student's prompts waiting or running."""
    return {"exec_info": {"queue_remaining": len(own_jobs(current_student(), ACTIVE, limit=10_000))}}
