"""Read-side questions about jobs: lookup and listing."""
from __future__ import annotations

from sqlalchemy import func, select

from ..accounts.users import visible_row, visible_to
from ..errors import NotFound
from ..db.extensions import db
from ..db.models import Job, Output, User


def get_job(job_id: str, user: User) -> Job:
    """Return a job ``user`` may see, or raise NotFound (also for another user's job: no hint it exists)."""
    job: Job = visible_row(Job, job_id, user, f"no job {job_id!r}; check the id returned by POST /v1/jobs")
    return job


def get_output(job_id: str, name: str, user: User) -> Output:
    """Return one stored output of a job ``user`` may see, or raise NotFound."""
    job = get_job(job_id, user)
    output = db.session.scalar(select(Output).where(Output.job_id == job_id, Output.name == name))
    if output is not None:
        return output
    names = ", ".join(o.name for o in job.outputs) or "none yet"
    raise NotFound(f"job {job_id} has no output {name!r}; its outputs: {names}")


def list_jobs(user: User, status: str | None, page: int, page_size: int) -> tuple[list[Job], int]:
    """Return one page of the jobs ``user`` may see, newest first, and their total count."""
    query = select(Job).where(visible_to(user, Job.user_id))
    count = select(func.count()).select_from(Job).where(visible_to(user, Job.user_id))
    if status:
        query, count = query.where(Job.status == status), count.where(Job.status == status)
    items = db.session.scalars(
        query.order_by(Job.created_at.desc(), Job.id.desc()).offset((page - 1) * page_size).limit(page_size))
    return list(items), db.session.scalar(count) or 0
