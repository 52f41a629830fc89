"""A student's jobs told in ComfyUI's shapes: queue items, history entries, output image references.

A job is a prompt whose id is the job id; its number is its creation time, so
the editor sorts prompts as they were submitted. An output is referenced as
``{filename: <output name>, subfolder: <job id>, type: "output"}``, which
``/view`` serves from comfyq's output store. The editor's own graph sent with a
prompt (``extra_data``) is kept a week in Redis, so "load workflow" works from
the queue and history panels.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Iterable

from redis.exceptions import RedisError
from sqlalchemy import select

from ..db.extensions import db, get_redis
from ..db.models import Job, Output, User
from ..errors import NotFound
from ..jobs.machine import JobStatus
from ..jobs.positions import position

WAITING = (JobStatus.PENDING.value, JobStatus.QUEUED.value)
logger = logging.getLogger(__name__)
EXTRA_KEY = "comfyq:editor:extra:{}"  # a prompt's extra_data as the editor sent it (its graph), for a week
EXTRA_TTL = 7 * 86400
EXTRA_MAX_BYTES = 2_000_000
MAX_HISTORY = 200  # prompts one /history answer tells at most
ENDED = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.TIMED_OUT.value, JobStatus.CANCELLED.value)


def number_of(job: Job) -> float:
    """Return the prompt number ComfyUI would give: here the job's creation time, which orders prompts."""
    return round(job.created_at.timestamp(), 6)


def own_job(job_id: str, user: User) -> Job:
    """Return ``user``'s own job with this id, or raise NotFound (another student's job is not found either)."""
    job = db.session.scalar(select(Job).where(Job.id == job_id, Job.user_id == user.id))
    if job is None:
        raise NotFound(f"no prompt {job_id!r} of yours")
    return job


def own_jobs(user: User, statuses: Iterable[str], newest_first: bool = False, limit: int = 200,
             started: bool = False) -> list[Job]:
    """Return ``user``'s jobs in ``statuses`` (``started``: only those that ran), in submission order or newest first."""
    order = (Job.created_at.desc(), Job.id.desc()) if newest_first else (Job.created_at, Job.id)
    query = select(Job).where(Job.user_id == user.id, Job.status.in_(list(statuses)))
    if started:
        query = query.where(Job.started_at.is_not(None))
    return list(db.session.scalars(query.order_by(*order).limit(limit)))


def output_nodes(workflow: dict[str, Any]) -> list[str]:
    """Return the nodes nothing links to: the graph's outputs, as ComfyUI lists them in a queue item."""
    linked = {str(value[0]) for node in workflow.values() if isinstance(node, dict)
              for value in (node.get("inputs") or {}).values() if isinstance(value, list) and value}
    return [node_id for node_id in workflow if node_id not in linked]


def keep_extra_data(job_id: str, client_id: Any, extra_data: Any) -> None:
    """Keep what the editor sent beside a prompt (its own graph, to load it again from the queue or history)."""
    extra = {"client_id": client_id if isinstance(client_id, str) else ""}
    info = extra_data.get("extra_pnginfo") if isinstance(extra_data, dict) else None
    if isinstance(info, dict) and isinstance(info.get("workflow"), dict):
        extra["extra_pnginfo"] = {"workflow": info["workflow"]}
    text = json.dumps(extra, separators=(",", ":"))
    try:
        if len(text) <= EXTRA_MAX_BYTES:
            get_redis().set(EXTRA_KEY.format(job_id), text, ex=EXTRA_TTL)
    except (RedisError, OSError) as exc:  # the prompt stands; only "load workflow" of it will be missing
        logger.warning("the editor graph of prompt %s not kept, Redis is unreachable: %s", job_id, exc)


def extra_data_of(job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Return the kept ``extra_data`` of prompts (``{"client_id": ""}`` where none was kept)."""
    found: dict[str, dict[str, Any]] = {}
    try:
        raw = get_redis().mget([EXTRA_KEY.format(job_id) for job_id in job_ids]) if job_ids else []
    except (RedisError, OSError):
        raw = [None] * len(job_ids)
    for job_id, text in zip(job_ids, raw):
        found[job_id] = json.loads(text) if text else {"client_id": ""}
    return found


def queue_item(job: Job, extra_data: dict[str, Any]) -> list[Any]:
    """Return a job as ComfyUI's queue lists a prompt: ``[number, prompt_id, prompt, extra_data, outputs]``."""
    return [number_of(job), job.id, job.workflow, extra_data, output_nodes(job.workflow)]


def image_ref(job_id: str, output: Output) -> dict[str, str]:
    """Return how the editor names an output: ``/view`` finds it by these three."""
    return {"filename": output.name, "subfolder": job_id, "type": "output"}


def outputs_by_node(job_id: str, outputs: Iterable[Output]) -> dict[str, dict[str, list[dict[str, str]]]]:
    """Return ComfyUI's ``outputs``: node id → ``{"images": [...]}``, expired files left out."""
    found: dict[str, dict[str, list[dict[str, str]]]] = {}
    for output in outputs:
        if output.expired_at is None:
            found.setdefault(output.node_id, {"images": []})["images"].append(image_ref(job_id, output))
    return found


def millis(job: Job, moment: str) -> int | None:
    """Return a job's timestamp (``started_at``, ``finished_at``) in milliseconds, as ComfyUI's messages do."""
    value = getattr(job, moment)
    return int(value.timestamp() * 1000) if value is not None else None


def history_entry(job: Job, extra_data: dict[str, Any]) -> dict[str, Any]:
    """Return an ended job as ComfyUI's history tells a prompt."""
    succeeded = job.status == JobStatus.SUCCEEDED.value
    messages: list[list[Any]] = [["execution_start", {"prompt_id": job.id, "timestamp": millis(job, "started_at")}]]
    end = {"prompt_id": job.id, "timestamp": millis(job, "finished_at")}
    if succeeded:
        messages.append(["execution_success", end])
    elif job.status == JobStatus.CANCELLED.value:
        messages.append(["execution_interrupted", {**end, "node_id": None, "node_type": None, "executed": []}])
    else:
        error = job.error or {}
        messages.append(["execution_error", {**end, "node_id": error.get("node_id"), "node_type":
                                             error.get("node_type"), "executed": [],
                                             "exception_message": error.get("message", job.status),
                                             "exception_type": error.get("exception_type") or error.get("type"),
                                             "traceback": [], "current_inputs": {}, "current_outputs": {}}])
    return {"prompt": queue_item(job, extra_data), "outputs": outputs_by_node(job.id, job.outputs),
            "status": {"status_str": "success" if succeeded else "error", "completed": succeeded,
                       "messages": messages},
            "meta": {node: {"node_id": node, "display_node": node, "parent_node": None, "real_node_id": node}
                     for node in outputs_by_node(job.id, job.outputs)}}


def history_of(user: User, max_items: int | None) -> dict[str, Any]:
    """Return ``user``'s ended prompts that ran (newest ``max_items``), oldest first, keyed by prompt id."""
    jobs = own_jobs(user, ENDED, newest_first=True, limit=min(max_items or MAX_HISTORY, MAX_HISTORY), started=True)
    extras = extra_data_of([job.id for job in jobs])
    return {job.id: history_entry(job, extras[job.id]) for job in reversed(jobs)}


def queue_remaining(user: User) -> int:
    """Return the student's place in the fair queue: the jobs that start before their first waiting one, plus theirs."""
    active = own_jobs(user, (*WAITING, JobStatus.RUNNING.value), limit=10_000)
    waiting = [job for job in active if job.status in WAITING][:20]  # the first is the soonest; 20 is plenty
    ahead = min(((position(job) or 0) for job in waiting), default=0)
    return ahead + len(active)
