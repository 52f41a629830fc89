"""How a run comes to its job: after its admission's commit, and past a prompt placed ahead.

A job's task is sent just before the admission that admits it commits, so a
run may wait a moment for that commit (``wait_admitted``). A run that finds its job placed on its own instance claims it and follows the
prompt there, never posting it twice; one that finds the job ended (cancelled
while it waited) takes the prompt out of the queue. A run that finds the job
placed on another instance sends it to that instance's worker while it lives,
or, the worker gone, follows the prompt where it waits or ran (``adopt``). A
placed job whose instance turned unfit before its run (stuck, restarting) is
taken back while its prompt still waits, and goes where a refused job goes.
"""
from __future__ import annotations

import logging
import time

import redis
from flask import current_app
from sqlalchemy import select

from ..comfy import ComfyClient, ComfyError
from ..config.settings import Instance
from ..db.extensions import db
from ..db.models import Job
from ..fleet import lease, placements
from ..jobs import broker, recovery
from ..jobs.machine import JobStatus, transition

logger = logging.getLogger(__name__)
ADMISSION_WAIT = 10.0  # seconds a job sent just before its admission's commit may wait for that commit
ADMISSION_QUICK = 0.25  # seconds of that wait spent looking every 2 ms, not every 20


def wait_admitted(job_id: str) -> Job | None:
    """Wait for the commit of the admission that sent a job (its task is sent just before); return the job.

    Admission sends under the admission lock so workers get jobs in admission
    order; the commit follows within milliseconds (a submission's own job
    has no row before it). If the decision rolled back, the job is still
    pending (or missing) after ``ADMISSION_WAIT`` and its task is dropped:
    the decision that admits it later sends it again.
    """
    began = time.monotonic()
    while True:
        db.session.rollback()  # a fresh read, past the admission's commit
        job = db.session.get(Job, job_id, populate_existing=True)
        waited = time.monotonic() - began
        if (job is not None and job.status != JobStatus.PENDING) or waited > ADMISSION_WAIT:
            return job
        time.sleep(0.002 if waited < ADMISSION_QUICK else 0.02)  # the commit usually follows within ms


def let_go(client: ComfyClient, r: redis.Redis, instance: str, job_id: str, status: str) -> None:
    """Take the prompt of a placed job that ended ``status`` (or runs elsewhere) off ``instance``; forget the placement."""
    logger.info("job %s is %s while its prompt waited on %s; withdrawing it", job_id, status, instance)
    recovery.stop_prompt(client, job_id)
    try:
        placements.unplace(r, instance, job_id)
    except (redis.RedisError, OSError) as exc:  # the placement's TTL ends it; its run finds the job ended
        logger.warning("job %s: could not forget its placement on %s: %s", job_id, instance, exc)


def let_go_elsewhere(r: redis.Redis, owner: str, job_id: str, status: str) -> None:
    """Stop the prompt of an ended job placed on ``owner`` if that instance's worker is gone, and forget it."""
    other = current_app.config["INSTANCES"].get(owner)
    if other is not None and lease.is_alive(r, owner):
        return  # that worker withdraws it: its placer, or the job's own run there
    if other is not None:
        logger.info("job %s is %s while its prompt waited on %s, whose worker is gone; withdrawing it",
                    job_id, status, owner)
        recovery.stop_prompt_on(other, job_id)
    placements.unplace(r, owner, job_id)


def take_back(client: ComfyClient, job_id: str) -> bool:
    """Withdraw a placed prompt that has not begun; return whether it waited and is gone now."""
    try:
        if client.find_prompt(job_id) != "pending":
            return False  # running or over: its run follows it
        client.delete_from_queue([job_id])
        return client.find_prompt(job_id) == "unknown"
    except ComfyError:
        return False


def take_back_all(r: redis.Redis, instance: Instance) -> None:
    """Withdraw every placed prompt still waiting on ``instance``, so its jobs run anywhere (a draining worker)."""
    with ComfyClient(instance.url, connect_timeout=2.0, read_timeout=5.0, retries=0) as client:
        for job_id in placements.placed_jobs(r, instance.name):
            if take_back(client, job_id):
                placements.unplace(r, instance.name, job_id)
                logger.info("job %s: its placed prompt left %s, whose worker stops", job_id, instance.name)


def adopt(r: redis.Redis, job: Job, owner: Instance, hostname: str | None) -> ComfyClient | None:
    """Claim a queued job placed on ``owner``, whose worker is gone, where its prompt waits or ran; return a client.

    None: ``owner`` has no such prompt (the placement is forgotten and the job
    runs where it is), or another run claimed the job first.
    """
    client = ComfyClient(owner.url, connect_timeout=2.0, read_timeout=10.0, retries=0)
    try:
        where = client.find_prompt(job.id)
    except ComfyError:
        where = "unknown"
    if where == "unknown":
        client.close()
        placements.unplace(r, owner.name, job.id)
        return None
    if not transition(job.id, JobStatus.RUNNING, [JobStatus.QUEUED], instance=owner.name, prompt_id=job.id,
                      attempts=Job.attempts + 1, progress=None, worker=hostname):
        client.close()
        return None
    placements.unplace(r, owner.name, job.id)
    logger.warning("job %s: the worker that placed it on %s is gone; following its prompt there (%s)",
                   job.id, owner.name, where)
    return client


def placed_elsewhere(r: redis.Redis, job: Job, owner: str, hostname: str | None,
                     limits: broker.Limits) -> str | tuple[Instance, ComfyClient] | None:
    """Deal with a run's queued job placed on instance ``owner``; return how the run ends, or what it follows.

    A string: the run ends so (sent to the owner's live worker, or taken). An
    instance and a client of it: the owner's worker is gone and this run
    follows the prompt there. None: nothing waits there, the run goes on here.
    """
    other = current_app.config["INSTANCES"].get(owner)
    if other is None:  # an instance no longer configured: its placement means nothing
        placements.unplace(r, owner, job.id)
        return None
    if lease.is_alive(r, other.name):
        return recovery.hand_over(job, other, limits)  # the worker that placed it follows its prompt
    client = adopt(r, job, other, hostname)
    if client is not None:
        return other, client
    db.session.rollback()
    status = db.session.scalar(select(Job.status).where(Job.id == job.id))
    return None if status == JobStatus.QUEUED else "taken"
