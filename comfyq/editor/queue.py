"""The student's queue and history in ComfyUI's shapes, and their ways to stop work (delete, clear, interrupt)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from ..errors import Conflict, InvalidRequest
from ..jobs.machine import JobStatus
from ..submission.cancellation import cancel_job
from .auth import current_student, require_student
from .history import WAITING, extra_data_of, history_entry, history_of, own_job, own_jobs, queue_item
from .shapes import json_body

bp = Blueprint("comfy_queue", __name__)
bp.before_request(require_student)


def _cancel_quietly(job_id: str) -> None:
    """Cancel one of the student's jobs; one that ended meanwhile is left as it ended."""
    try:
        cancel_job(job_id, current_student())
    except Conflict:
        pass


@bp.route("/queue", methods=["GET"])
def queue() -> dict[str, Any]:
    """Answer the student's running and waiting prompts."""
    student = current_student()
    running, waiting = own_jobs(student, (JobStatus.RUNNING.value,)), own_jobs(student, WAITING)
    extras = extra_data_of([job.id for job in running + waiting])
    return {"queue_running": [queue_item(j, extras[j.id]) for j in running],
            "queue_pending": [queue_item(j, extras[j.id]) for j in waiting]}


@bp.route("/queue", methods=["POST"])
def change_queue() -> Response:
    """Remove waiting prompts: ``{"delete": [ids]}`` (another student's id: 404) or ``{"clear": true}``."""
    body, student = json_body(), current_student()
    if not isinstance(body, dict):
        raise InvalidRequest("send {\"delete\": [prompt ids]} or {\"clear\": true}")
    if body.get("clear") is True:
        for job in own_jobs(student, WAITING, limit=10_000):
            _cancel_quietly(job.id)
    deleting = body.get("delete", [])
    if not isinstance(deleting, list) or not all(isinstance(item, str) for item in deleting):
        raise InvalidRequest("\"delete\" must be a list of prompt ids")
    jobs = [own_job(job_id, student) for job_id in deleting]  # all checked before any is removed
    for job in jobs:
        if job.status in WAITING:  # as ComfyUI: never the running one
            _cancel_quietly(job.id)
    return Response(status=200)


@bp.route("/interrupt", methods=["POST"])
def interrupt() -> Response:
    """Stop the student's running prompt (``{"prompt_id"}``: only if that one runs; another student's: 404)."""
    body, student = json_body(required=False), current_student()
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    if prompt_id is not None and not isinstance(prompt_id, str):
        raise InvalidRequest("\"prompt_id\" must be a prompt id")
    running = [own_job(prompt_id, student)] if prompt_id else own_jobs(student, (JobStatus.RUNNING.value,))
    for job in running:
        if job.status == JobStatus.RUNNING.value:
            _cancel_quietly(job.id)
    return Response(status=200)


@bp.route("/history", methods=["GET"])
def history() -> dict[str, Any]:
    """Answer the student's finished prompts, at most ``max_items`` of the newest."""
    raw = request.args.get("max_items", "")
    max_items = int(raw) if raw.isdigit() and int(raw) > 0 else None
    return history_of(current_student(), max_items)


@bp.route("/history/<prompt_id>", methods=["GET"])
def history_one(prompt_id: str) -> dict[str, Any]:
    """Answer one of the student's prompts once finished (``{}`` before); another student's: 404."""
    job = own_job(prompt_id, current_student())
    if job.status in WAITING or job.status == JobStatus.RUNNING.value or job.started_at is None:
        return {}
    return {job.id: history_entry(job, extra_data_of([job.id])[job.id])}


@bp.route("/history", methods=["POST"])
def change_history() -> Response:
    """Accept ``{"clear"}`` or ``{"delete"}`` of history; comfyq keeps every job, so nothing is removed."""
    json_body(required=False)
    return Response(status=200)


@bp.route("/free", methods=["POST"])
def free() -> Response:
    """Accept "unload models": comfyq's workers manage their instances' memory, so nothing is done."""
    json_body(required=False)
    return Response(status=200)
