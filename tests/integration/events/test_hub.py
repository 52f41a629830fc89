"""The event hub and a held stream on a real Redis: order, gaps read back from the log, lost subscriptions, ends."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Callable

import redis

from comfyq.events import log as events
from comfyq.events.held import Stream
from comfyq.events.hub import Hub, JobState
from comfyq.client.sse import parse

Lookup = Callable[[list[str]], dict[str, JobState]]


def silently(r: redis.Redis, job_id: str, event: dict[str, Any]) -> None:
    """Log an event without announcing it, as if its pub/sub message were lost."""
    log = events.job_log(job_id)
    prev = (r.get(log + ":last") or events.START.encode()).decode()
    r.set(log + ":last", r.xadd(log, {"e": json.dumps({**event, "job_id": job_id}), "p": prev}))


async def follow(redis_url: str, job_id: str, act: Any, lookup: Lookup = lambda ids: {}
                 ) -> list[tuple[str | None, str]]:
    """Hold a stream of ``job_id`` while ``act(hub)`` publishes; return (id, type) of what it sent."""
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message.get("body", b""))

    hub = Hub(redis_url + "?client_name=hub-under-test", lookup, position_every=0.05)
    stream = Stream(hub, {"log": events.job_log(job_id), "after": events.START, "job": job_id, "status": "running"},
                    send)
    task = asyncio.create_task(stream.run())
    await act(hub)
    await asyncio.wait_for(task, 10)
    assert not hub.followers  # the ended stream left the hub
    await hub.close()
    return [(e.id, e.type) for e in parse(b"".join(sent).decode().split("\n"))]


def logged(r: redis.Redis, job_id: str) -> list[tuple[str | None, str]]:
    """Return (id, type) of a job's log."""
    return [(n, json.loads(body)["type"]) for n, body in events.read_after(r, events.job_log(job_id), events.START)]


def test_a_lost_message_is_read_back_from_the_log(redis_url: str) -> None:
    r, job_id = redis.Redis.from_url(redis_url), str(uuid.uuid4())

    async def act(hub: Hub) -> None:
        await asyncio.sleep(0.3)
        events.publish(r, job_id, None, {"type": "progress"})
        silently(r, job_id, {"type": "output"})
        await asyncio.sleep(0.2)
        events.publish(r, job_id, None, {"type": "succeeded"})

    got = asyncio.run(follow(redis_url, job_id, act))
    assert [kind for _, kind in got] == ["progress", "output", "succeeded"] and got == logged(r, job_id)


def test_events_during_a_lost_subscription_arrive_after_it_is_back(redis_url: str) -> None:
    r, job_id = redis.Redis.from_url(redis_url), str(uuid.uuid4())

    async def act(hub: Hub) -> None:
        await asyncio.sleep(0.3)
        events.publish(r, job_id, None, {"type": "progress"})
        for client in r.client_list():  # the hub's subscription drops (only the hub's: the stack shares Redis)
            if client["name"] == "hub-under-test" and int(client["psub"]):
                r.client_kill_filter(_id=client["id"])
        silently(r, job_id, {"type": "progress"})
        silently(r, job_id, {"type": "succeeded"})  # nothing new will be published: only the resync finds it

    got = asyncio.run(follow(redis_url, job_id, act))
    assert [kind for _, kind in got] == ["progress", "progress", "succeeded"] and got == logged(r, job_id)


def test_a_log_that_expired_and_began_again_goes_on(redis_url: str) -> None:
    r, job_id = redis.Redis.from_url(redis_url), str(uuid.uuid4())
    log = events.job_log(job_id)

    async def act(hub: Hub) -> None:
        await asyncio.sleep(0.3)
        events.publish(r, job_id, None, {"type": "progress"})
        await asyncio.sleep(0.2)
        r.delete(log, log + ":last")  # a day without events: the log and its last id expired
        events.publish(r, job_id, None, {"type": "output"})
        events.publish(r, job_id, None, {"type": "succeeded"})

    got = asyncio.run(follow(redis_url, job_id, act))
    assert [kind for _, kind in got] == ["progress", "output", "succeeded"]
    assert got[1:] == logged(r, job_id)  # the new log's ids, later than any of the old one


def test_an_end_that_never_reached_the_log_still_ends_the_stream(redis_url: str) -> None:
    r, job_id = redis.Redis.from_url(redis_url), str(uuid.uuid4())
    final = json.dumps({"type": "failed", "status": "failed", "error": {"type": "x"}, "job_id": job_id})

    ended: list[bool] = []

    async def act(hub: Hub) -> None:
        await asyncio.sleep(0.3)
        events.publish(r, job_id, None, {"type": "progress"})
        ended.append(True)  # and Redis failed as the job ended: the database alone knows

    got = asyncio.run(follow(redis_url, job_id, act, lambda ids: {
        job_id: JobState("failed", None, final) if ended else JobState("running", None, None)}))
    assert got == [logged(r, job_id)[0], (None, "failed")]


def test_nothing_is_logged_after_a_final_event(redis_url: str) -> None:
    r, job_id = redis.Redis.from_url(redis_url), str(uuid.uuid4())
    assert events.publish(r, job_id, "someone", {"type": "cancelled"}) is not None
    assert events.publish(r, job_id, "someone", {"type": "started"}) is None  # a worker that had not heard
    assert [kind for _, kind in logged(r, job_id)] == ["cancelled"]
    user = events.read_after(r, events.user_log("someone"), events.START)
    assert [json.loads(body)["type"] for _, body in user] == ["cancelled"]
