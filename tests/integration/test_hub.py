"""The event hub and a held stream on a real Redis: order, gaps read back from the log, a lost subscription."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import redis

from comfyq import events
from comfyq.asgi import Stream
from comfyq.hub import Hub
from comfyq.sse import parse


def silently(r: redis.Redis, job_id: str, event: dict[str, Any]) -> None:
    """Log an event without announcing it, as if its pub/sub message were lost."""
    log = events.job_log(job_id)
    number = r.incr(log + ":seq")
    r.xadd(log, {"e": json.dumps({**event, "job_id": job_id})}, id=f"{number}-0")


async def follow(redis_url: str, job_id: str, act: Any) -> list[tuple[int | None, str]]:
    """Hold a stream of ``job_id`` while ``act(hub)`` publishes; return (id, type) of what it sent."""
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message.get("body", b""))

    hub = Hub(redis_url + "?client_name=hub-under-test", lambda ids: {})
    stream = Stream(hub, {"log": events.job_log(job_id), "after": 0, "job": job_id, "status": "running"}, send)
    task = asyncio.create_task(stream.run())
    await act(hub)
    await asyncio.wait_for(task, 10)
    assert hub.count() == 0  # the ended stream left the hub
    await hub.close()
    return [(e.id, e.type) for e in parse(b"".join(sent).decode().split("\n"))]


def test_a_lost_message_is_read_back_from_the_log(redis_url: str) -> None:
    r, job_id = redis.Redis.from_url(redis_url), str(uuid.uuid4())

    async def act(hub: Hub) -> None:
        await asyncio.sleep(0.3)
        events.publish(r, job_id, None, {"type": "progress"})
        silently(r, job_id, {"type": "output"})
        await asyncio.sleep(0.2)
        events.publish(r, job_id, None, {"type": "succeeded"})

    assert asyncio.run(follow(redis_url, job_id, act)) == [(1, "progress"), (2, "output"), (3, "succeeded")]


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

    assert asyncio.run(follow(redis_url, job_id, act)) == [(1, "progress"), (2, "progress"), (3, "succeeded")]
