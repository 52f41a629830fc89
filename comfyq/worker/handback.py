"""Give a held job back to the queue while another instance that could run it sits idle.

A worker with a lookahead holds its next job (and may have placed its
prompt) while its running job executes. If another instance that serves the
job's queue has nothing running, nothing held and nothing waiting for it in
that queue, holding the job would leave that GPU idle: the job is sent to its
queue again, where that instance takes it, and this worker's own message for
it is marked void (comfyq.fleet.placements.hand_back), so its run drops it.

Two looks do so. The worker's main process watches each job it receives while
busy for its first second (``Watch``): a job its admission sent as another
worker was finishing its own goes there within milliseconds of that worker
going idle. The pool child, at each poll of the running job, looks at the
jobs it still holds (``HandBack.offer``): there two looks in a row must agree,
and a prompt already placed is taken back first.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

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
        now = self.waiting() if self.peers and looking else set()
        idle, self.seen = now & self.seen, now
        return idle

    def waiting(self) -> set[str]:
        """Return the empty queues that some idle, healthy, open peer consumes."""
        running = self.redis.mget([RUNNING_KEY.format(peer.name) for peer in self.peers])
        free = [peer for peer, job in zip(self.peers, running) if job is None]  # a busy fleet stops here
        if not free:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for peer in free:
            pipe.exists(PRESENCE_KEY.format(peer.name))
            pipe.hmget(STATUS_KEY.format(peer.name), "state", "intake")
            pipe.llen(lookahead.KEY.format(peer.name))
        answers = pipe.execute()
        served: set[str] = set()
        for n, peer in enumerate(free):
            alive, (state, intake), held = answers[3 * n: 3 * n + 3]
            if alive and state == HEALTHY.encode() and intake == b"open" and not held:
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
        if not give_back(self.redis, self.instance.name, job_id, lambda: broker.enqueue(job)):
            return False
        idle.discard(job.queue)  # one job per idle look: the next look sees whether the instance took it
        self.seen.discard(job.queue)
        logger.info("job %s: an instance waits idle on %s; handed back to the queue", job_id, job.queue)
        return True


def give_back(r: redis.Redis, me: str, job_id: str, send: Callable[[], None]) -> bool:
    """Void this worker's message for a held, unplaced job and ``send`` the job to its queue; return whether it went.

    The mark comes first, so a placement made after it stands back; a job
    placed already, or a failed send, undoes it all: this worker's message runs.
    """
    placements.hand_back(r, me, job_id)
    lookahead.started(r, me, job_id)
    if placements.placed_on(r, job_id) is None:  # placed meanwhile: the pool child's look decides
        try:
            send()
            return True
        except Exception as exc:  # noqa: BLE001 - whatever failed, this worker's own message must run after all
            logger.warning("job %s: could not send it back to the queue (%s); it runs here", job_id, exc)
    placements.take_hand_back(r, me, job_id)
    lookahead.note(r, me, job_id)
    return False


class Watch:
    """In a GPU worker's main process, send back a job received while busy once an idle instance waits for it."""

    FIRST_LOOK = 0.01  # seconds to the first look after a job comes; each later one waits twice as long
    LAST_GAP = 0.32  # the longest wait between looks
    WATCH_FOR = 1.0  # seconds a received job is watched; then the pool child's looks take over

    def __init__(self, handback: HandBack, send: Callable[[Any], None]) -> None:
        self.handback, self.send = handback, send
        self.watched: dict[str, tuple[float, str, Any]] = {}  # job id -> (until, queue, request)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def watch(self, request: Any, queue: str) -> None:
        """Watch a run message the worker just received while busy with another job."""
        if not self.handback.peers or queue == self.handback.instance.queue:
            return  # nobody else could run it
        with self.lock:
            self.watched[request.id] = (time.monotonic() + self.WATCH_FOR, queue, request)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="handback", daemon=True)
                self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        """Look while any job is watched; sleep otherwise."""
        while True:
            self.wake.wait()
            gap = self.FIRST_LOOK
            while True:
                # A peer finishing its job usually goes idle within tens of ms of the job's coming: look soon, then less.
                if self.wake.wait(gap):
                    self.wake.clear()
                    gap = self.FIRST_LOOK
                else:
                    gap = min(gap * 2, self.LAST_GAP)
                try:
                    if not self._look():
                        break
                except Exception:  # noqa: BLE001 - the watch must outlive one bad look; the child's looks remain
                    logger.exception("looking for idle instances failed")

    def _look(self) -> bool:
        """Look once at the watched jobs: give back those an idle instance waits for; return whether any is left."""
        now = time.monotonic()
        with self.lock:
            for job_id in [j for j, (until, _, _) in self.watched.items() if until < now]:
                del self.watched[job_id]
            watched = dict(self.watched)
        if not watched:
            return False
        try:
            r, me = self.handback.redis, self.handback.instance.name
            queues = sorted({queue for _, queue, _ in watched.values()})
            pipe = r.pipeline(transaction=False).lrange(lookahead.KEY.format(me), 0, -1).smembers(
                placements.INSTANCE_KEY.format(me))
            for queue in queues:
                pipe.llen(queue)
            listed, placed, *depths = pipe.execute()
            waiting = {m.decode() for m in listed} - {m.decode() for m in placed}
            # A job with others behind it in its queue leaves an idle instance nothing to wait for; later, the
            # pool child's looks see to it.
            crowded = {queue for queue, depth in zip(queues, depths) if depth}
            waiting -= {job_id for job_id, (_, queue, _) in watched.items() if queue in crowded}
            for job_id in set(watched) - waiting:  # its run began, its prompt was placed, or it has company
                del watched[job_id]
                with self.lock:
                    self.watched.pop(job_id, None)
            idle = self.handback.waiting() if watched else set()
            for job_id, (_, queue, request) in watched.items():
                if queue in idle and self._give_back(job_id, request):
                    idle.discard(queue)
        except (redis.RedisError, OSError) as exc:
            logger.warning("could not look for idle instances: %s", exc)
        with self.lock:
            return bool(self.watched)

    def _give_back(self, job_id: str, request: Any) -> bool:
        """Send one held, unplaced job back to its queue; return whether it went."""
        r, me = self.handback.redis, self.handback.instance.name
        with self.lock:
            self.watched.pop(job_id, None)
        if job_id not in lookahead.held(r, me):
            return False  # its run began
        if not give_back(r, me, job_id, lambda: self.send(request)):
            return False
        logger.info("job %s: an instance waits idle for it; sent back to the queue on receipt", job_id)
        return True
