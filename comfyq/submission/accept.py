"""Accept work: plan it, charge for it, store it pending, admit what the caps allow, enqueue that."""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from redis.exceptions import RedisError

from . import admission
from ..accounts import credits
from ..fleet import instances
from ..events import announcer
from ..jobs import positions, timing
from ..accounts.users import check_submission
from ..errors import Unavailable
from ..db.extensions import db, get_redis
from ..jobs.machine import JobStatus, transition
from ..accounts.limits import ADMITTED_STATUSES, check_waiting, count, limits_for
from ..db.models import Job, User
from .planning import Plan, plan_job
from ..webhooks.subscriptions import for_submission

logger = logging.getLogger(__name__)


def new_job(plan: Plan, user: User, batch_id: str | None = None) -> Job:
    """Return an unsaved pending job of ``user`` for a plan."""
    return Job(user_id=user.id, status=JobStatus.PENDING.value, queue=plan.queue, instance_requested=plan.instance,
               workflow=plan.workflow, template=plan.template, template_version=plan.template_version,
               params=plan.params, cost=plan.cost, soft_time_limit=plan.soft_time_limit, inputs=plan.inputs,
               batch_id=batch_id, outputs=[], workflow_format=plan.workflow_format)


def accept(user: User, jobs: list[Job], *with_them: object) -> None:
    """Charge ``user`` for ``jobs``, store them (and ``with_them``) pending, and enqueue what the caps admit.

    Charging, the waiting cap, the rows and the admission are one transaction:
    the user's row stays locked from the debit to the commit, so concurrent
    submissions can neither overdraw nor overfill. If the broker refuses a new
    job, every one of ``jobs`` not yet started is cancelled and refunded, and the
    caller gets a 503 saying so.
    """
    config = current_app.config
    metered = credits.is_metered(user, config)
    credits.reserve(user, sum(job.cost or 0 for job in jobs) if metered else 0)
    check_waiting(user, len(jobs), limits_for(user, config))
    db.session.add_all([*with_them, *jobs])
    db.session.flush()
    if metered:
        credits.record_debits(user, jobs)
    admitted = admission.admit(user.id, added=len(jobs))
    failed = admission.send(admitted)  # still under the admission lock: workers get jobs in admission order
    db.session.commit()
    announcer.pending([job for job in jobs if job.status == JobStatus.PENDING])
    ours = {job.id for job in jobs}
    if any(job.id in ours for job in failed):
        refuse(jobs)


def refuse(jobs: list[Job]) -> None:
    """Cancel (and so refund) the jobs of a submission the broker refused, unless one started already; answer 503."""
    error = {"type": "enqueue_failed", "message": "the queue (Redis) was unreachable"}
    # Never leave a queued row without a broker message behind it.
    # Pending ones first: cancelling a queued one admits the owner's next pending job.
    ordered = sorted(jobs, key=lambda job: job.status != JobStatus.PENDING)
    started = [job.id for job in ordered
               if not transition(job.id, JobStatus.CANCELLED, [JobStatus.PENDING, JobStatus.QUEUED], error=error)]
    if not started:
        raise Unavailable("the queue (Redis) is unreachable; nothing was queued and no credits were taken, "
                          "try again")
    raise Unavailable(f"the queue (Redis) failed part-way: {len(jobs) - len(started)} of {len(jobs)} jobs were "
                      f"cancelled and refunded; {', '.join(started)} had started and go on")


def submit_job(body: dict[str, Any], user: User, raw_granted: bool = False) -> Job:
    """Plan, charge, store and (caps allowing) enqueue one job of ``user``; return it.

    ``raw_granted``: whoever opened this surface for ``user`` allowed raw workflows whatever the role and
    level (an editor session); validation, the node policy, caps and credits apply all the same.
    """
    if not raw_granted:
        check_submission(user, body, current_app.config["RAW_WORKFLOW_ROLES"])
    webhook = for_submission(body, user)  # before planning, which may stage input images
    job = new_job(plan_job(body, user), user)
    webhook.apply([job])
    accept(user, [job])
    return job


def would_wait_behind(user: User, queue: str) -> int:
    """Return how many jobs would start before one ``user`` submits to ``queue`` now, if nobody else arrives."""
    config = current_app.config
    limits = limits_for(user, config)
    cap = int(config["MAX_ADMITTED"])
    full = bool(cap) and count(None, ADMITTED_STATUSES, cap) >= cap
    if full or count(user.id, ADMITTED_STATUSES, limits.max_running) >= limits.max_running:
        return positions.next_pending_position(user, queue, limits.weight)  # it would wait pending
    return positions.waiting_in(queue)  # admitted at once: at the end of its queue


def estimate_job(body: dict[str, Any], user: User) -> dict[str, Any]:
    """Answer what a submission by ``user`` would cost and meet, without creating a job."""
    check_submission(user, body, current_app.config["RAW_WORKFLOW_ROLES"])
    for_submission(body, user)  # a webhook the submission would refuse is refused here too
    plan = plan_job(body, user, estimate=True)
    ahead = would_wait_behind(user, plan.queue)
    try:
        described = instances.describe(get_redis(), {i.name: i for i in plan.candidates})["instances"]
        eta = timing.Estimator().start(plan.queue, ahead)
    except RedisError as exc:
        raise Unavailable(f"Redis is unreachable ({exc}); try again") from exc
    idle = [row["name"] for row in described if row["worker_online"] and row["reachable"] and not row["running_job"]]
    return {
        "template": plan.template, "template_version": plan.template_version, "params": plan.params,
        "workflow_format": plan.workflow_format,
        "cost": plan.cost, "balance": credits.balance_of(user.id) if credits.is_metered(user, current_app.config)
        else None, "soft_time_limit": plan.soft_time_limit, "hard_time_limit": plan.hard_time_limit,
        "queue": plan.queue, "queue_position": ahead, "instances_idle": idle,
        "estimated_start": eta,
        "guards": {"pass": not plan.guard_failures, "failures": plan.guard_failures},
    }
