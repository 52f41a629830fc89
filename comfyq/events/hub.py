"""One API process's event hub: a single pub/sub subscription fanned out to every open stream.

The hub subscribes once to every event log's channel and hands each message
to the queues of the streams following that log, so a thousand streams cost
one Redis connection and no thread. After every (re)subscription it tells
each stream to read its log again, since messages may have been lost while
unsubscribed. Once a second it looks up the queue position of every waiting
job a stream follows, in one worker thread, and hands out the changes; every
few seconds it also checks whether a followed job ended without its final
event reaching the log (Redis failed just then), and hands that out.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import defaultdict
from typing import Any, Callable, NamedTuple

import redis.asyncio as aioredis

from . import log as events
from .sse import kind_of, render

logger = logging.getLogger(__name__)
RESYNC = "resync"  # to a stream's queue: read the log again
PING_EVERY = 15.0  # seconds of silence on the subscription before asking Redis whether it is there
ENDS_EVERY = 5  # position rounds between checks that followed jobs have not ended unannounced
GONE = "gone"  # the client left, or the process stops
ANY = "*"  # followers of this "log" get a NUDGE at any job event (a dashboard)
NUDGE = "nudge"
BACKLOG = 2000  # a stream this far behind (a client not reading) is ended; it resumes by Last-Event-ID


class Published(NamedTuple):
    """A logged event as announced, read once for all its followers."""

    prev: str  # the id of the event before it in its log
    id: str
    kind: str
    chunk: bytes  # the event as Server-Sent Event bytes


class Follower:
    """An open stream's mailbox: log messages, resync requests and position changes."""

    def __init__(self, log: str, job: str | None, waiting: bool) -> None:
        self.log = log
        self.job = job  # the job a job's stream follows; None for a user's stream
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.waiting_job = job if waiting else None  # a pending or queued job whose position the stream reports
        self.position: tuple[str, int | None] | None = None
        self.overflowed = False


class JobState(NamedTuple):
    """What a stream needs of its job each round."""

    status: str
    position: int | None  # while waiting
    final: str | None  # the final event's JSON once ended
    estimated_start: str | None = None  # ISO 8601, while waiting and estimable


StateLookup = Callable[[list[str]], dict[str, JobState]]


class Hub:
    """Fan one Redis pub/sub connection out to the streams of this process."""

    def __init__(self, redis_url: str, states: StateLookup, position_every: float = 1.0) -> None:
        self.redis = aioredis.Redis.from_url(redis_url, health_check_interval=30)
        self.lookup = states
        self.position_every = position_every
        self.followers: dict[str, set[Follower]] = defaultdict(set)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start listening and polling positions, once, in the running loop."""
        if not self.tasks:
            self.tasks = [asyncio.create_task(self._listen(), name="hub-listen"),
                          asyncio.create_task(self._poll_positions(), name="hub-positions")]

    def follow(self, log: str, job: str | None, waiting: bool) -> Follower:
        """Register a stream following ``log`` (of ``job``, maybe waiting); return its mailbox."""
        self.start()
        follower = Follower(log, job, waiting)
        self.followers[log].add(follower)
        return follower

    def forget(self, follower: Follower) -> None:
        """Stop delivering to a stream."""
        followers = self.followers.get(follower.log)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self.followers[follower.log]

    async def read_after(self, log: str, after: str) -> list[tuple[str, str]]:
        """Return the logged events of ``log`` after id ``after``."""
        return events.entries(await self.redis.xrange(log, f"({after}", "+"))

    def _tell_all(self, message: str) -> None:
        """Put ``message`` in every stream's mailbox."""
        for group in self.followers.values():
            for follower in group:
                follower.queue.put_nowait(message)

    async def _listen(self) -> None:
        """Deliver every log message to its followers; resubscribe after any failure or a silent connection."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(events.CHANNELS)
                heard = time.monotonic()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    quiet = time.monotonic() - heard
                    if message is None:
                        if quiet > 3 * PING_EVERY:
                            raise TimeoutError(f"no answer from Redis for {quiet:.0f} s")
                        if quiet > PING_EVERY:
                            await pubsub.ping()  # a half-open connection shows itself by never answering
                        continue
                    heard = time.monotonic()
                    self._hand_out(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever it was, a live hub matters more: start over
                logger.warning("event hub lost Redis (%s); resubscribing in 1 s", exc)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _hand_out(self, message: dict[str, Any]) -> None:
        """Put one pub/sub message in the mailbox of each stream following its log."""
        if message["type"] == "psubscribe":
            self._tell_all(RESYNC)  # anything published while we were not subscribed is in the logs
        if message["type"] != "pmessage":
            return
        for watcher in self.followers.get(ANY, ()):
            if watcher.queue.empty():  # one nudge stands for a burst
                watcher.queue.put_nowait(NUDGE)
        followers = self.followers.get(message["channel"].decode(), ())
        if not followers:
            return
        prev, event_id, body = events.parse(message["data"])
        kind = kind_of(body)
        published = Published(prev, event_id, kind, render(event_id, body, kind))
        for follower in followers:
            if follower.queue.qsize() >= BACKLOG:
                follower.overflowed = True
            else:
                follower.queue.put_nowait(published)

    async def _poll_positions(self) -> None:
        """Each second, hand out waiting jobs' new positions; every few seconds, the ends of followed jobs."""
        loop = asyncio.get_running_loop()
        for tick in itertools.count(1):
            await asyncio.sleep(self.position_every)
            watched = [f for group in self.followers.values() for f in group
                       if f.waiting_job or (f.job and tick % ENDS_EVERY == 0)]
            if not watched:
                continue
            try:
                found = await loop.run_in_executor(None, self.lookup, sorted({f.waiting_job or f.job for f in watched}))
            except Exception:  # a DB or Redis hiccup: the next round tries again
                logger.exception("job states for event streams could not be read")
                continue
            for follower in watched:
                state = found.get(follower.waiting_job or follower.job or "")
                if state is None:
                    continue
                if state.final is not None:
                    follower.queue.put_nowait(("ended", state.final))
                elif follower.waiting_job and (state.status, state.position) != follower.position:
                    follower.position = (state.status, state.position)
                    follower.queue.put_nowait(("position", state.status, state.position, state.estimated_start))

    async def close(self) -> None:
        """Stop the hub and end every stream."""
        for task in self.tasks:
            task.cancel()
        self._tell_all(GONE)
        await self.redis.aclose()
