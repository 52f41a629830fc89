"""The announcer: the one path by which a job's news leaves.

Every piece of a job's news is made here and nowhere else:

* each move of the state machine (``on_moved``, connected as a ``jobs.on_moved``
  hook): told from the move itself, heard by the listeners in the move's
  transaction (so a job's end and its webhook delivery commit together), and
  logged once the move commits;
* jobs starting to wait (``pending``: new pending jobs; ``admitted``: pending
  jobs let into their queues): each joins its queue-position set and its
  ``queued`` event is logged (streams add the positions as they change);
* a run's progress and outputs (a ``RunNews``, kept by the worker's runner):
  each event logged as it happens, from a background thread so the runner
  never waits on Redis (comfyq.events.background), in order and always before
  the move that ends the run; and the progress the runner saves handed to the
  run's followers (progress webhooks), which keep their own pace.

Logged means appended to the job's and its owner's Redis logs
(comfyq.events.log), which every SSE stream reads; a move's event goes in the
one pipeline of the move's Redis writes (comfyq.db.piped). Listeners hear each piece
of news just before it is logged; they and the run followers are connected by
the app's wiring (comfyq.app), so this module names none of them.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable, Mapping, NamedTuple

import redis

from . import log
from .background import Background
from ..db.extensions import get_redis
from ..db.models import Job
from ..jobs import positions
from ..jobs.machine import JobStatus, Moved
from .progress import public_progress
from .telling import moved_event, waiting_event

logger = logging.getLogger(__name__)


class News(NamedTuple):
    """One event of a job, as its logs get it and listeners hear it."""

    job_id: str
    user_id: str | None
    event: dict[str, Any]
    moved: Moved | None = None  # the move that made it, heard in the move's transaction


Action = Callable[[], None]
# A listener hears every piece of news; what it returns runs once that news is logged.
Listener = Callable[[News], Action | None]
# A run follower sees a job about to run; what it returns gets the run's saved progress (None: not interested).
RunFollower = Callable[[Job], Callable[[dict[str, Any]], None] | None]
_listeners: list[Listener] = []
_followers: list[RunFollower] = []


def on_news(listener: Listener) -> None:
    """Let ``listener`` hear every job's news (connecting it twice changes nothing)."""
    if listener not in _listeners:
        _listeners.append(listener)


def on_run(follower: RunFollower) -> None:
    """Let ``follower`` follow the saved progress of every run (connecting it twice changes nothing)."""
    if follower not in _followers:
        _followers.append(follower)


def on_moved(moved: Moved) -> Action | None:
    """Tell a move, to the listeners in its transaction and to its logs once it commits (a ``jobs.on_moved`` hook)."""
    event = moved_event(moved)
    if event is None:
        return None
    news = News(moved.job_id, moved.user_id, event, moved)
    after = [listener(news) for listener in _listeners]  # a listener that fails undoes the move

    def log_move() -> None:
        # a run's progress, queued in this process, is logged before the move that ends it
        if not _runs.flush():
            logger.warning("job %s: its progress events were still queued when its %s was logged",
                           news.job_id, event.get("type"))
        _log([news], after)
    return log_move


def pending(jobs: list[Job]) -> None:
    """Announce new pending jobs, just committed: each joins its owner's pending set."""
    positions.pending_added(jobs)
    _announce([News(job.id, job.user_id, waiting_event(job, with_position=False)) for job in jobs])


def admitted(jobs: list[Job]) -> None:
    """Announce jobs just admitted to their queues, in the order they are sent: each joins its queue's set."""
    positions.admitted(jobs)
    _announce([News(job.id, job.user_id, waiting_event(job, with_position=False)) for job in jobs])


def admission_undone(jobs: list[tuple[str, str | None, str, datetime]]) -> None:
    """Announce that the admission of jobs (id, owner, queue, created), told but rolled back, is undone."""
    positions.readmit_pending(jobs)
    _announce([News(job_id, user_id, {"type": "queued", "status": JobStatus.PENDING.value, "position": None})
               for job_id, user_id, _, _ in jobs])


class RunNews:
    """The news of one run of a job: progress and outputs as they happen, saved progress to the followers."""

    def __init__(self, job: Job, r: redis.Redis) -> None:
        self.job_id, self.user_id, self.redis = job.id, job.user_id, r
        self.followers = [found for found in (follow(job) for follow in _followers) if found is not None]

    def tell(self, event: dict[str, Any]) -> None:
        """Announce one ``progress`` or ``output`` event of the run; it is logged from the background, in order."""
        news = News(self.job_id, self.user_id, event)
        _runs.put((news, _hear([news]), self.redis))

    def saved(self, state: Mapping[str, Any]) -> None:
        """Hand the progress the runner just saved, as a ``progress`` event tells it, to the run's followers."""
        if self.followers:
            progress = public_progress(state)
            for follow in self.followers:
                follow(progress)


def _hear(items: list[News]) -> list[Action | None]:
    """Let the listeners hear news made outside a move's transaction; a listener's failure is logged."""
    after: list[Action | None] = []
    for news in items:
        for listener in _listeners:
            try:
                after.append(listener(news))
            except Exception:  # news outside a move never fails the submission or the run that made it
                logger.exception("job %s: a listener failed on its %s event", news.job_id, news.event.get("type"))
    return after


def _announce(items: list[News], r: redis.Redis | None = None) -> None:
    """Let the listeners hear news made outside a move's transaction, then log it."""
    _log(items, _hear(items), r)


def _log(items: list[News], after: list[Action | None], r: redis.Redis | None = None) -> None:
    """Append news to its jobs' and owners' logs (a Redis outage is logged, never raised), then run ``after``.

    Inside a move's after-commit actions the events go with the move's other
    Redis writes, in one round trip (comfyq.db.piped), and ``after`` runs once
    that is sent.
    """
    def done(_: object = None) -> None:
        for action in filter(None, after):
            try:
                action()
            except Exception:  # the news stands; the reconciler and resend pass repair what an action missed
                logger.exception("an action after the news of job %s failed", items[0].job_id)

    def failed(exc: Exception) -> None:
        logger.warning("events of %d jobs not published, Redis is unreachable: %s", len(items), exc)
        done()
    if not items:
        done()
        return
    try:
        log.publish_piped(r or get_redis(), [(news.job_id, news.user_id, news.event) for news in items], done, failed)
    except Exception:  # the events could not even be written down: the actions still run
        done()
        raise


def _send_runs(queued: list[tuple[News, list[Action | None], redis.Redis]]) -> None:
    """Log the run news the background thread found queued, in one round trip per Redis client."""
    start = 0
    for end in range(1, len(queued) + 1):
        if end == len(queued) or queued[end][2] is not queued[start][2]:
            part = queued[start:end]
            _log([news for news, _, _ in part], [action for _, after, _ in part for action in after], part[0][2])
            start = end


_runs: Background[tuple[News, list[Action | None], redis.Redis]] = Background(_send_runs)
