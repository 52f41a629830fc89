"""Wait, without a thread, until some jobs have ended: what a submission that asked to (``Prefer: wait``) needs.

``comfyq.asgi`` keeps such a submission's answer and waits here: the
process's ``Hub`` puts every event of each job in one mailbox, tagged with
its job; a job's final event, or the hub's finding that it ended
unannounced, crosses it off. The logs' end marks are read at the start (a
job may have ended before the wait began) and after every resubscription
of the hub (messages may have been lost meanwhile).
"""
from __future__ import annotations

import asyncio
from typing import Any

from . import log as events
from .hub import GONE, RESYNC, Follower, Hub, Published
from .log import FINAL_TYPES


class JobMailbox(asyncio.Queue):  # type: ignore[type-arg]
    """One job's mailbox at the hub, emptied into a wait's shared queue as (job, item)."""

    def __init__(self, job_id: str, shared: asyncio.Queue[tuple[str | None, Any]]) -> None:
        super().__init__()
        self.job_id, self.shared = job_id, shared

    def put_nowait(self, item: Any) -> None:
        """Pass ``item`` on, tagged with the job."""
        self.shared.put_nowait((self.job_id, item))

    def qsize(self) -> int:
        """Return how far behind the wait is (the hub drops items past its backlog)."""
        return self.shared.qsize()


class JobsWait:
    """A wait for every one of some jobs to end."""

    def __init__(self, hub: Hub, job_ids: list[str]) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[tuple[str | None, Any]] = asyncio.Queue()
        self.pending = set(job_ids)
        self.followers: list[Follower] = []
        for job_id in job_ids:
            follower = hub.follow(events.job_log(job_id), job_id, False)
            follower.queue = JobMailbox(job_id, self.queue)
            self.followers.append(follower)

    def stop(self) -> None:
        """End the wait early (its client left)."""
        self.queue.put_nowait((None, GONE))

    async def run(self, seconds: float) -> bool:
        """Return True once every job ended; False when ``seconds`` pass, the wait is stopped or the hub closes."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + seconds
        try:
            await self.check()
            while self.pending:
                try:
                    job_id, item = await asyncio.wait_for(self.queue.get(), ends - loop.time())
                except asyncio.TimeoutError:
                    return False
                if item == GONE:
                    return False
                if item == RESYNC or any(f.overflowed for f in self.followers):
                    await self.check()
                elif isinstance(item, Published):
                    if item.kind in FINAL_TYPES:
                        self.pending.discard(str(job_id))
                elif isinstance(item, tuple) and item[0] == "ended":  # ended, its final event never logged
                    self.pending.discard(str(job_id))
            return True
        finally:
            for follower in self.followers:
                self.hub.forget(follower)

    async def check(self) -> None:
        """Cross off the jobs whose final event is in their logs."""
        for follower in self.followers:
            follower.overflowed = False
        waiting = sorted(self.pending)
        if waiting:
            marks = await self.hub.redis.mget([events.done_key(job_id) for job_id in waiting])
            self.pending -= {job_id for job_id, mark in zip(waiting, marks) if mark is not None}
