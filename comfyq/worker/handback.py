"""Give a held job back to the queue while another instance that could run it sits idle.

A worker with a lookahead holds its next job (and may have placed its
prompt) while its running job executes. If meanwhile another instance that
serves the job's queue has nothing running, nothing held and nothing waiting
for it in that queue, at two looks in a row, holding the job would leave that
GPU idle: the prompt is taken back if it still waits, the job is sent to its
queue again, and this worker's own message for it is marked void
(comfyq.fleet.placements.hand_back), so its run drops it.
"""
from __future__ import annotations

import logging

import redis

from ..comfy import ComfyClient
from ..config.settings import SHARED_QUEUE, Instance
from ..db.extensions import db
from ..db.models import Job
from ..fleet import placements
from ..fleet.instances import HEALTHY, RUNNING_KEY, STATUS_KEY
from ..fleet.lease import PRESENCE_KEY
from ..jobs import broker
from ..jobs.machine import JobStatus
from . import claim, lookahead

logger = logging.getLogger(__name__)


class HandBack:
    """Tell which queues have an idle instance waiting on them, and send a held job back to one."""

    def __init__(self, instance: Instance, instances: dict[str, Instance], r: redis.Redis) -> None:
        self.instance, self.redis = instance, r
        self.peers = [i for i in instances.values() if i.name != instance.name]
        self.seen: set[str] = set()  # the queues found waiting at the last look

    def idle_queues(self, looking: bool = True) -> set[str]:
        """Return the queues an idle instance waits on with nothing in them, now and at the last look.

        ``looking`` False (the worker holds no next job): look at nothing, and
        let the next look start afresh.
        """
        now = self._waiting() if self.peers and looking else set()
        idle, self.seen = now & self.seen, now
        return idle

    def _waiting(self) -> set[str]:
        """Return the empty queues that some idle, healthy, open peer consumes."""
        pipe = self.redis.pipeline(transaction=False)
        for peer in self.peers:
            pipe.exists(PRESENCE_KEY.format(peer.name))
            pipe.hmget(STATUS_KEY.format(peer.name), "state", "intake")
            pipe.exists(RUNNING_KEY.format(peer.name))
            pipe.llen(lookahead.KEY.format(peer.name))
        answers = pipe.execute()
        served: set[str] = set()
        for n, peer in enumerate(self.peers):
            alive, (state, intake), running, held = answers[4 * n: 4 * n + 4]
            if alive and state == HEALTHY.encode() and intake == b"open" and not running and not held:
                served.update([SHARED_QUEUE, *peer.queues()[1:]])  # its own queue holds no job of this worker
        if not served:
            return set()
        queues = sorted(served)
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        return {queue for queue, depth in zip(queues, pipe.execute()) if depth == 0}

    def offer(self, job_id: str, idle: set[str], client: ComfyClient) -> bool:
        """Send a held job back to its queue if an idle instance waits on it; return whether it went."""
        db.session.rollback()  # a fresh read
        job = db.session.get(Job, job_id, populate_existing=True)
        if job is None or job.status != JobStatus.QUEUED or job.queue not in idle:
            return False
        if placements.placed_on(self.redis, job_id) == self.instance.name:
            if not claim.take_back(client, job_id):
                return False  # its prompt could not be withdrawn: it runs here
            placements.unplace(self.redis, self.instance.name, job_id)
        placements.hand_back(self.redis, self.instance.name, job_id)  # before the send: this message is void
        lookahead.started(self.redis, self.instance.name, job_id)
        broker.enqueue(job)
        idle.discard(job.queue)  # one job per idle look: the next look sees whether the instance took it
        self.seen.discard(job.queue)
        logger.info("job %s: an instance waits idle on %s; handed back to the queue", job_id, job.queue)
        return True
