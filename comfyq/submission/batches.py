"""Batches: one template, many parameter sets, validated all together before any job exists."""
from __future__ import annotations

import itertools
import math
import random
from typing import Any

from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from ..accounts.users import check_submission, visible_row
from ..errors import InvalidRequest
from ..jobs.machine import TERMINAL
from ..db.models import Batch, User, new_job_id
from .planning import Plan, plan_template
from .accept import accept, new_job
from ..webhooks.subscriptions import for_submission


def expand(base: dict[str, Any], variants: list[dict[str, Any]] | None,
           grid: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """Return the parameter sets of a batch: base params overlaid with each variant or grid point."""
    if variants is not None:
        return [{**base, **variant} for variant in variants]
    names = list(grid or {})
    return [{**base, **dict(zip(names, point))} for point in itertools.product(*((grid or {})[n] for n in names))]


def size(body: dict[str, Any]) -> int:
    """Return how many jobs a batch body makes, without building them."""
    if body.get("variants") is not None:
        return len(body["variants"])
    return math.prod(len(values) for values in (body.get("grid") or {}).values()) if body.get("grid") else 0


def shared_seeds(body: dict[str, Any]) -> dict[str, Any]:
    """Return base params with one random value for every seed no member sets, so members differ only as asked."""
    template = current_app.extensions["templates"].get(body["template"])
    varied = set(body.get("grid") or {}) | {k for v in body.get("variants") or [] for k in v}
    base = dict(body.get("params") or {})
    for name, param in template.params.items():
        if param.type == "seed" and base.get(name) is None and name not in varied:
            if param.mode == "novice" or body.get("mode") == "expert":
                base[name] = random.SystemRandom().randrange(2**32)
    return base


def create_batch(body: dict[str, Any], max_jobs: int, user: User) -> Batch:
    """Plan every member (all or nothing), then charge for, create and enqueue the batch's jobs for ``user``."""
    check_submission(user, body, current_app.config["RAW_WORKFLOW_ROLES"])
    webhook = for_submission(body, user)  # every member gets the same webhook
    count = size(body)
    if count > max_jobs:
        raise InvalidRequest(f"the batch would make {count} jobs; the limit is {max_jobs}",
                             {"json": {"grid" if body.get("grid") else "variants": ["too many jobs"]}})
    members = expand(shared_seeds(body), body.get("variants"), body.get("grid"))
    if not members:
        raise InvalidRequest("the batch is empty: give at least one variant or grid value",
                             {"json": {"variants": ["empty"]}})
    plans: list[Plan] = []
    for index, params in enumerate(members):
        try:
            plans.append(plan_template(body["template"], params, body.get("mode") or "novice",
                                       body.get("instance"), user))
        except InvalidRequest as exc:
            raise InvalidRequest(f"member {index} ({_label(params, body)}): {exc.message}",
                                 {"json": {"members": {str(index): exc.errors.get("json", exc.errors)}}}) from exc
    batch = Batch(id=new_job_id(), user_id=user.id, template=plans[0].template,
                  template_version=plans[0].template_version)
    jobs = [new_job(plan, user, batch.id) for plan in plans]
    webhook.apply(jobs)
    accept(user, jobs, batch)
    set_committed_value(batch, "jobs", jobs)  # made in creation order: no need to load them back
    return batch


def _label(params: dict[str, Any], body: dict[str, Any]) -> str:
    """Describe a member by the params its variant or grid point sets."""
    keys = list(body.get("grid") or {}) or sorted({k for v in body.get("variants") or [] for k in v})
    return ", ".join(f"{k}={params.get(k)!r}" for k in keys) or "base params"


def get_batch(batch_id: str, user: User) -> Batch:
    """Return a batch ``user`` may see, or raise NotFound."""
    batch: Batch = visible_row(Batch, batch_id, user,
                               f"no batch {batch_id!r}; check the id returned by POST /v1/batches")
    return batch


def summary(batch: Batch) -> dict[str, Any]:
    """Return counts by status and the batch's overall status."""
    counts: dict[str, int] = {}
    for job in batch.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    done = all(job.status in TERMINAL for job in batch.jobs)
    if not done:
        status = "running" if counts.get("running") else "queued"
    elif counts.get("succeeded") == len(batch.jobs):
        status = "succeeded"
    else:
        status = "finished_with_errors"
    return {"status": status, "counts": counts, "total": len(batch.jobs)}
