"""Job endpoints: submit, read, list, cancel, download outputs."""
from __future__ import annotations

from typing import Any

from flask import current_app, redirect, send_file, url_for
from flask.views import MethodView
from flask_smorest import abort

from ..submission.cancellation import cancel_job
from ..db.models import Job, Output, WebhookDelivery
from ..jobs.positions import position
from ..jobs.timing import estimated_start
from ..jobs.queries import get_job, get_output, list_jobs
from ..submission.accept import estimate_job, submit_job
from ..webhooks.deliveries import deliveries_of
from .auth import current_user
from .parser import Blueprint
from .prefer import APPLIED_DOC, PREFER_DOC, submitted_answer
from ..accounts.ratelimit import check_rate
from .schemas import EstimateSchema, JobCreateSchema, JobListQuerySchema, JobPageSchema, JobSchema
from .webhooks import present_webhook

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Submit and follow jobs")
JOB_EXAMPLE = {"template": "txt2img", "params": {"prompt": "a lighthouse at dusk", "steps": 4}}

_FILE = {"schema": {"type": "string", "format": "binary"}}
# An output is served as the type its file name says: PNG from ComfyUI's SaveImage, the others from other save nodes.
OUTPUT_DOC = {"responses": {
    "200": {"description": "the file; its type is the output's content_type (application/octet-stream when "
                           "its name tells none)",
            "content": {media: _FILE for media in ("image/png", "image/jpeg", "image/webp", "image/gif", "*/*")}},
    "206": {"description": "the part a Range header asked for", "content": {"*/*": _FILE}},
    "302": {"description": "stored in S3: a presigned URL to download it from",
            "headers": {"Location": {"schema": {"type": "string"}, "description": "the presigned URL"}}},
    "304": {"description": "unchanged since the ETag in If-None-Match (the file's sha256)"},
}}


def present_page(jobs: list[Job]) -> list[dict[str, Any]]:
    """Return the client's view of many jobs, their webhook deliveries read in one query."""
    deliveries = deliveries_of(job.id for job in jobs if job.webhook_url is not None)
    return [present(job, with_position=False, deliveries=deliveries.get(job.id, [])) for job in jobs]


def present(job: Job, with_position: bool = True, deliveries: list[WebhookDelivery] | None = None) -> dict[str, Any]:
    """Return the client's view of a job (``deliveries``: its webhook's, if already read)."""
    base, store = current_app.config["PUBLIC_URL"], current_app.extensions["stores"].outputs

    def link(o: Output) -> str | None:
        """Return where to download ``o``, or None once it expired."""
        if o.expired_at is not None:
            return None
        return store.url(o.path, o.name, o.content_type) or (
            (base + url_for("jobs.output", job_id=job.id, name=o.name)) if base
            else url_for("jobs.output", job_id=job.id, name=o.name, _external=True))

    outputs = [{"name": o.name, "node_id": o.node_id, "kind": o.kind, "content_type": o.content_type,
                "size": o.size, "sha256": o.sha256, "expired": o.expired_at is not None, "url": link(o)}
               for o in job.outputs]
    ahead = position(job) if with_position else None
    return {
        "id": job.id, "status": job.status, "template": job.template, "template_version": job.template_version,
        "workflow_format": job.workflow_format,
        "params": job.params, "cost": job.cost, "soft_time_limit": job.soft_time_limit, "batch_id": job.batch_id,
        "queue": job.queue, "instance": job.instance, "worker": job.worker, "attempts": job.attempts,
        "instance_requested": job.instance_requested, "webhook": present_webhook(job, deliveries),
        "queue_position": ahead, "estimated_start": estimated_start(job, ahead),
        "progress": job.progress, "error": job.error, "created_at": job.created_at,
        "started_at": job.started_at, "finished_at": job.finished_at, "outputs": outputs,
    }


def submit(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Submit ``body`` (a JobCreateSchema's fields) for the caller, rate limit first; return the answer.

    The answer is the job's view, 202 and no headers, unless ``Prefer: wait=N`` holds it (comfyq.api.prefer).
    """
    check_rate(current_user())
    job = submit_job(body, current_user())
    status, headers = submitted_answer([job.id], [job.status], f"/v1/jobs/{job.id}")
    return present(job), status, headers


@bp.route("")
class Jobs(MethodView):
    """The job collection."""

    @bp.arguments(JobCreateSchema, example=JOB_EXAMPLE)
    @bp.response(202, JobSchema, headers=APPLIED_DOC)
    @bp.alt_response(200, schema=JobSchema, headers=APPLIED_DOC, success=True,
                     description="`Prefer: wait=N` and the job ended within N seconds: the ended job")
    @bp.doc(parameters=[PREFER_DOC])
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Submit a template with params, or a raw workflow; answers at once with the job, queued or pending.

        With `Prefer: wait=N`, the answer waits up to N seconds for the job to end (200 with its outputs or
        error); a job still running then is answered 202 as usual, and runs on.
        """
        return submit(body)

    @bp.arguments(JobListQuerySchema, location="query")
    @bp.response(200, JobPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List jobs, newest first."""
        items, total = list_jobs(current_user(), args["status"], args["page"], args["page_size"])
        return {"items": present_page(items), "page": args["page"],
                "page_size": args["page_size"], "total": total}


# Flask joins a blueprint prefix and a rule with "/", so the colon route needs its own blueprint.
estimate_bp = Blueprint("estimates", __name__, description="Price a job before submitting it")


@estimate_bp.route("/v1/jobs:estimate", methods=["POST"])
@estimate_bp.arguments(JobCreateSchema, example=JOB_EXAMPLE)
@estimate_bp.response(200, EstimateSchema)
def estimate(body: dict[str, Any]) -> dict[str, Any]:
    """Say what a submission would cost, its time limit, queue position and guard verdict; create nothing."""
    return estimate_job(body, current_user())


@bp.route("/<job_id>")
@bp.response(200, JobSchema)
def job(job_id: str) -> dict[str, Any]:
    """Return a job: status, instance, progress, queue position, outputs, error."""
    return present(get_job(job_id, current_user()))


@bp.route("/<job_id>/cancel", methods=["POST"])
@bp.response(200, JobSchema)
def cancel(job_id: str) -> dict[str, Any]:
    """Cancel a pending or queued job (it never runs; its credits come back) or interrupt a running one."""
    return present(cancel_job(job_id, current_user()))


@bp.route("/<job_id>/outputs/<name>")
@bp.doc(**OUTPUT_DOC)
def output(job_id: str, name: str) -> Any:
    """Download one output file of a job (from an S3 store: a redirect to a presigned URL)."""
    out = get_output(job_id, name, current_user())
    if out.expired_at is not None:
        abort(410, message=f"output {name!r} of job {job_id} expired: retention deleted it "
                           f"{out.expired_at:%Y-%m-%d %H:%M} UTC")
    store = current_app.extensions["stores"].outputs
    direct = store.url(out.path, out.name, out.content_type)
    if direct is not None:
        return redirect(direct, 302)
    path = store.local_path(out.path)
    if path is None or not path.is_file():
        abort(410, message=f"output {name!r} of job {job_id} is no longer stored")
    return send_file(path, mimetype=out.content_type, download_name=out.name,
                     etag=out.sha256, conditional=True, max_age=3600)
