"""One API process's event hub: a single pub/sub subscription fanned out to every open stream.

The hub subscribes once to every event log's channel and hands each message
to the queues of the streams following that log, so a thousand streams cost
one Redis connection and no thread. After every (re)subscription it tells
each stream to read its log again, since messages may have been lost while
unsubscribed. Once a second it looks up the queue position of every waiting
job a stream follows, in one worker thread, and hands out the changes.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import events

logger = logging.getLogger(__name__)
RESYNC = "resync"  # to a stream's queue: read the log again
GONE = "gone"  # the client left, or the process stops
BACKLOG = 2000  # a stream this far behind (a client not reading) is ended; it resumes by Last-Event-ID


class Follower:
    """An open stream's mailbox: log messages, resync requests and position changes."""

    def __init__(self, log: str, waiting_job: str | None) -> None:
        self.log = log
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.waiting_job = waiting_job  # a pending or queued job whose position this stream reports
        self.position: tuple[str, int | None] | None = None
        self.overflowed = False


PositionLookup = Callable[[list[str]], dict[str, tuple[str, int | None]]]


class Hub:
    """Fan one Redis pub/sub connection out to the streams of this process."""

    def __init__(self, redis_url: str, positions: PositionLookup, position_every: float = 1.0) -> None:
        self.redis = aioredis.Redis.from_url(redis_url, health_check_interval=30)
        self.lookup = positions
        self.position_every = position_every
        self.followers: dict[str, set[Follower]] = defaultdict(set)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start listening and polling positions, once, in the running loop."""
        if not self.tasks:
            self.tasks = [asyncio.create_task(self._listen(), name="hub-listen"),
                          asyncio.create_task(self._poll_positions(), name="hub-positions")]

    def follow(self, log: str, waiting_job: str | None) -> Follower:
        """Register a stream following ``log``; return its mailbox."""
        self.start()
        follower = Follower(log, waiting_job)
        self.followers[log].add(follower)
        return follower

    def forget(self, follower: Follower) -> None:
        """Stop delivering to a stream."""
        followers = self.followers.get(follower.log)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self.followers[follower.log]

    def count(self) -> int:
        """Return how many streams are open."""
        return sum(len(group) for group in self.followers.values())

    async def read_after(self, log: str, after: int) -> list[tuple[int, str]]:
        """Return the logged events of ``log`` after number ``after``."""
        return events.entries(await self.redis.xrange(log, f"({after}-0", "+"))

    def _tell_all(self, message: str) -> None:
        for group in self.followers.values():
            for follower in group:
                follower.queue.put_nowait(message)

    async def _listen(self) -> None:
        """Deliver every log message to its followers; resubscribe after a Redis failure."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(events.CHANNELS)
                async for message in pubsub.listen():
                    if message["type"] == "psubscribe":
                        self._tell_all(RESYNC)  # anything published while we were not subscribed is in the logs
                    elif message["type"] == "pmessage":
                        for follower in self.followers.get(message["channel"].decode(), ()):
                            if follower.queue.qsize() >= BACKLOG:
                                follower.overflowed = True
                            else:
                                follower.queue.put_nowait(message["data"])
            except (RedisError, OSError) as exc:
                logger.warning("event hub lost Redis (%s); resubscribing in 1 s", exc)
                await asyncio.sleep(1)
            finally:
                await pubsub.aclose()

    async def _poll_positions(self) -> None:
        """Every ``position_every`` seconds, hand each waiting job's new position to its streams."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.position_every)
            watched = [f for group in self.followers.values() for f in group if f.waiting_job]
            if not watched:
                continue
            try:
                found = await loop.run_in_executor(None, self.lookup, sorted({f.waiting_job for f in watched}))
            except Exception:  # a DB or Redis hiccup: the next round tries again
                logger.exception("queue positions for event streams failed")
                continue
            for follower in watched:
                now = found.get(follower.waiting_job or "")
                if now is not None and now != follower.position:
                    follower.position = now
                    follower.queue.put_nowait(("position", *now))

    async def close(self) -> None:
        """Stop the hub and end every stream."""
        for task in self.tasks:
            task.cancel()
        self._tell_all(GONE)
        await self.redis.aclose()
