"""A wait for jobs to end, fed by the hub as it hands out messages (no Redis: its end marks are given)."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from comfyq.events import log as events
from comfyq.events.hub import Hub
from comfyq.events.waits import JobsWait
from tests.conftest import NOWHERE


class Marks:
    """The end marks a fake Redis holds: ``mget`` as the hub's client answers it."""

    def __init__(self, *ended: str) -> None:
        self.ended = set(ended)
        self.asked = 0

    async def mget(self, keys: list[str]) -> list[Any]:
        self.asked += 1
        return [b"1" if any(key == events.done_key(job) for job in self.ended) else None for key in keys]


def quiet_hub(marks: Marks) -> Hub:
    """Return a hub that listens to nothing (its messages are handed out by the test) with ``marks``."""
    hub = Hub(NOWHERE, lambda ids: {})
    hub.tasks = [asyncio.get_running_loop().create_future()]  # started, as far as follow() knows
    hub.redis = marks  # type: ignore[assignment]
    return hub


def announce(hub: Hub, job_id: str, kind: str, n: int) -> None:
    """Hand out one event of a job as the hub hears it on pub/sub."""
    data = f'1-{n - 1} 1-{n} {{"type":"{kind}","job_id":"{job_id}"}}'
    hub._hand_out({"type": "pmessage", "channel": events.job_log(job_id).encode(), "data": data.encode()})


def test_the_wait_ends_once_every_job_has_ended_and_then_follows_nothing() -> None:
    async def scenario() -> tuple[bool, float, Hub]:
        hub = quiet_hub(Marks())
        wait = JobsWait(hub, ["a", "b"])
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, announce, hub, "a", "progress", 1)
        loop.call_later(0.1, announce, hub, "a", "succeeded", 2)
        loop.call_later(0.15, announce, hub, "b", "started", 1)
        b = next(iter(hub.followers[events.job_log("b")]))
        # Ended, its final event never logged: the hub's look at the database says so.
        loop.call_later(0.2, b.queue.put_nowait, ("ended", '{"type":"failed"}'))
        began = time.monotonic()
        ended = await wait.run(30)
        return ended, time.monotonic() - began, hub

    ended, took, hub = asyncio.run(scenario())
    assert ended and took < 5
    assert not hub.followers


def test_the_wait_gives_up_at_its_deadline_or_when_stopped() -> None:
    async def scenario() -> tuple[bool, float, bool, float]:
        hub = quiet_hub(Marks())
        began = time.monotonic()
        timed_out = await JobsWait(hub, ["a"]).run(0.3)
        took = time.monotonic() - began
        wait = JobsWait(hub, ["a"])
        asyncio.get_running_loop().call_later(0.05, wait.stop)
        began = time.monotonic()
        stopped = await wait.run(30)
        return timed_out, took, stopped, time.monotonic() - began

    timed_out, took, stopped, took_stopped = asyncio.run(scenario())
    assert not timed_out and 0.25 <= took < 5
    assert not stopped and took_stopped < 5


def test_jobs_ended_before_the_wait_and_after_a_resubscription_are_found_by_their_marks() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        marks = Marks("a")
        before = await JobsWait(quiet_hub(marks), ["a"]).run(30)  # ended before the wait began
        hub = quiet_hub(marks)
        wait = JobsWait(hub, ["a", "b"])

        def lost_then_resubscribed() -> None:
            marks.ended.add("b")  # b's final event was published while the hub was not subscribed
            hub._hand_out({"type": "psubscribe", "channel": events.CHANNELS.encode(), "data": 1})

        asyncio.get_running_loop().call_later(0.05, lost_then_resubscribed)
        return before, await wait.run(30), marks.asked

    before, after, asked = asyncio.run(scenario())
    assert before and after and asked == 3  # at each start, and after the resubscription
