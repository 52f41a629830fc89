"""The broker: every message comfyq sends through Celery, and kombu's Redis layout, known here alone.

Tasks go by name to the queues celeryconfig routes them to; the workers register
them (comfyq.worker.tasks, comfyq.control.tasks, comfyq.webhooks.tasks). A job's
task carries the job's id as its own, so a job has one task id however often it
is sent again.

kombu's Redis transport keeps each delivered, unacknowledged message in the
``unacked`` hash (tag → [message, exchange, routing key]) with its delivery time
in the ``unacked_index`` sorted set, and any worker puts a message back on its
queue once that time is older than the visibility timeout. ``HeldMessages``
moves that time to now for what a live worker holds (comfyq.fleet.lease renews
it every second); ``task_ids`` and ``message_count`` read the queues and the
hash for the reconciler.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterable, Iterator, Mapping

import redis
from celery import Celery
from flask import current_app
from kombu.exceptions import OperationalError as BrokerError

from ..config.settings import SHARED_QUEUE, WEBHOOK_QUEUE
from ..db.models import Job

logger = logging.getLogger(__name__)
RUN_JOB = "comfyq.run_job"
RECONCILE = "comfyq.reconcile"
EXPIRE_OUTPUTS = "comfyq.expire_outputs"
DELIVER_WEBHOOK = "comfyq.deliver_webhook"
RESEND_WEBHOOKS = "comfyq.resend_webhooks"
# Anything send_task raises means no message may exist.
SEND_ERRORS = (BrokerError, redis.RedisError, OSError, RuntimeError)
Limits = tuple[float | None, float | None]  # a task's (soft, hard) time limits in seconds; None: the default


def _celery() -> Celery:
    """Return the Celery app of the current Flask app."""
    return current_app.extensions["celery"]


def enqueue(job: Job, queue: str | None = None, countdown: float | None = None, limits: Limits | None = None) -> None:
    """Send ``job``'s task to ``queue`` (its own by default), after ``countdown`` seconds, with its time limits.

    ``limits`` are those of the message being replaced; by default the job's soft
    limit and that plus ``COMFYQ_TIME_LIMIT_GRACE``.
    """
    soft, hard = limits or (job.soft_time_limit, job.soft_time_limit + current_app.config["TIME_LIMIT_GRACE"])
    _celery().send_task(RUN_JOB, args=[job.id], task_id=job.id, queue=queue or job.queue, countdown=countdown,
                        soft_time_limit=soft, time_limit=hard, ignore_result=True,
                        argsrepr=job_repr(job), kwargsrepr=run_repr(job, queue or job.queue))


def job_repr(job: Job) -> str:
    """Return how Flower shows a run's arguments: the job id, and what it runs."""
    what = f"template {job.template} v{job.template_version}" if job.template else "raw workflow"
    return f"job {job.id}, {what}"


def run_repr(job: Job, queue: str) -> str:
    """Return how Flower shows where a run may go: the instance asked for, any of a capability, or any."""
    if job.instance_requested:
        return f"instance {job.instance_requested}"
    return "any instance" if queue == SHARED_QUEUE else f"queue {queue}"


def send_again(celery: Celery, request: Any) -> None:
    """Send a run message a worker received back to the queue it came from, as it was (same id and limits)."""
    hard, soft = request.time_limits
    celery.send_task(request.name, args=list(request.args), task_id=request.id,
                     queue=request.delivery_info["routing_key"], soft_time_limit=soft, time_limit=hard,
                     ignore_result=True, argsrepr=request.argsrepr, kwargsrepr=request.kwargsrepr)


def revoke(job_id: str) -> None:
    """Tell the workers to drop the task of ``job_id`` should they receive it; log, never raise, if that fails."""
    try:
        _celery().control.revoke(job_id)
    except Exception as exc:  # an optimisation: a worker skips a job that has ended anyway
        logger.warning("revoke of %s failed: %s", job_id, exc)


def shutdown_worker(hostname: str) -> None:
    """Ask one worker for a warm shutdown: it takes nothing more and drains its running job, then exits."""
    _celery().control.shutdown(destination=[hostname])


def send_delivery(delivery_id: str, countdown: float | None = None) -> None:
    """Send a webhook delivery's task (after ``countdown`` s); if the broker is down, the resend pass does it later."""
    try:
        _celery().send_task(DELIVER_WEBHOOK, args=[delivery_id], queue=WEBHOOK_QUEUE, countdown=countdown,
                            ignore_result=True, argsrepr=f"delivery {delivery_id}")
    except SEND_ERRORS as exc:
        logger.warning("webhook delivery %s not sent now (%s); the resend pass sends it", delivery_id, exc)


def delivery_tag(request: Any) -> str | None:
    """Return the broker delivery tag of a Celery task request, if it has one."""
    tag = (request.delivery_info or {}).get("delivery_tag") or getattr(request.message, "delivery_tag", None)
    return str(tag) if tag else None


def connect(socket_timeout: float = 5.0) -> redis.Redis:
    """Return a Redis client of the broker itself (``COMFYQ_BROKER_URL``)."""
    return redis.Redis.from_url(current_app.config["BROKER_URL"], socket_connect_timeout=2,
                                socket_timeout=socket_timeout)


def transport_options() -> dict[str, Any]:
    """Return the broker transport options of the current app (visibility timeout, key names)."""
    return dict(_celery().conf.broker_transport_options or {})


def queue_names() -> list[str]:
    """Return every broker queue comfyq declares."""
    return [q.name for q in _celery().conf.task_queues]


def unacked_key(options: Mapping[str, Any]) -> str:
    """Return the name of kombu's hash of delivered, unacknowledged messages."""
    return f"{options.get('global_keyprefix', '')}{options.get('unacked_key', 'unacked')}"


def unacked_index_key(options: Mapping[str, Any]) -> str:
    """Return the name of kombu's sorted set of those messages' delivery times."""
    return f"{options.get('global_keyprefix', '')}{options.get('unacked_index_key', 'unacked_index')}"


def _message_ids(raw_messages: Iterable[bytes], nested: bool = False) -> Iterator[str]:
    """Yield the task ids of raw kombu messages (``nested``: the unacked hash's [message, exchange, key])."""
    for raw in raw_messages:
        try:
            message = json.loads(raw)
            yield (message[0] if nested else message)["headers"]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            logger.warning("broker: skipping an unreadable message")


def task_ids(client: redis.Redis, queues: list[str]) -> set[str]:
    """Return the id of every task waiting in ``queues`` or held unacknowledged by a worker."""
    found: set[str] = set()
    for queue in queues:
        for start in range(0, client.llen(queue), 1000):
            found.update(_message_ids(client.lrange(queue, start, start + 999)))
    found.update(_message_ids((v for _, v in client.hscan_iter(unacked_key(transport_options()))), nested=True))
    return found


def message_count(client: redis.Redis, queues: list[str]) -> int:
    """Return how many messages wait in ``queues`` or are held unacknowledged, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
    pipe.hlen(unacked_key(transport_options()))
    return sum(pipe.execute())


def queue_depths(client: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Return how many messages wait in each of ``queues`` (held ones not counted), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
    return dict(zip(queues, pipe.execute()))


def held_messages(celery: Celery) -> HeldMessages:
    """Return what renews the messages a worker of ``celery`` holds, on a broker connection of its own."""
    client = redis.Redis.from_url(celery.conf.broker_url, socket_connect_timeout=2, socket_timeout=5)
    return HeldMessages(client, dict(celery.conf.broker_transport_options or {}))


class HeldMessages:
    """Keep the messages a live worker holds from ageing past the visibility timeout."""

    def __init__(self, client: redis.Redis, options: Mapping[str, Any]) -> None:
        self.client = client
        self.index_key = unacked_index_key(options)
        self.visibility = float(options.get("visibility_timeout", 3600))

    def renew(self, tags: list[str]) -> set[str]:
        """Move the delivery time of each held message to now; return the tags no longer held."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            # XX: never re-add a message that was acknowledged (or restored) meanwhile.
            pipe.zadd(self.index_key, {tag: now}, xx=True, ch=True)
        return {tag for tag, changed in zip(tags, pipe.execute()) if not changed}
