"""Concurrent event streams held by ONE API process, and how fast they deliver.

For each N: N clients open ``GET /v1/events`` of one user on a single
``comfyq api --workers 1`` process; the bench then appends events to that
user's log (as workers do: ``comfyq.events.log.publish``), one every half second,
and every client checks it received all of them, in order, and when.
Baseline, in the same run: N plain Redis pub/sub subscribers of the same
channel, reading the same events (the floor a stream cannot beat). Reported:
delivery latency (publish → parsed by the client) p50/p99, the time for one
event to reach all N clients (fan-out, p50), the ratio of fan-out to the
baseline's, and the API process's threads, RSS and CPU. The clients share one
Python process, so at large N its parsing adds to every figure.

    python bench/streams.py [N ...]        (default 100 500 1000 2000)
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import redis
import redis.asyncio as aioredis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import percentile, stack, user_key  # noqa: E402
from comfyq.events import log as events  # noqa: E402
from comfyq.sim.process import free_port  # noqa: E402
from comfyq.client.sse import parse  # noqa: E402

EVENTS = 10  # events per round, GAP seconds apart
GAP = 0.5
JOB = "00000000-0000-4000-8000-00000000bench"
SERVER: psutil.Process | None = None  # the API process


async def _sse_client(session: aiohttp.ClientSession, url: str, opened: asyncio.Event, count: list[int],
                      latencies: list[tuple[int, float]], total: int) -> None:
    """Open the stream; record each bench event's latency until ``EVENTS`` arrived, in order."""
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        count[0] += 1
        if count[0] == total:
            opened.set()
        lines: list[str] = []
        seen = 0
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            lines.append(line)
            if line:
                continue
            for event in parse(lines):
                if event.type == "bench":
                    now = time.time()
                    assert event.data["n"] == seen, f"event {event.data['n']} arrived as number {seen}"
                    seen += 1
                    latencies.append((event.data["n"], now - event.data["t"]))
            lines = []
            if seen == EVENTS:
                return


async def _redis_client(url: str, channel: str, opened: asyncio.Event, count: list[int], latencies: list[tuple[int, float]],
                        total: int) -> None:
    """Subscribe straight to the channel; record each bench event's latency."""
    import json

    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    count[0] += 1
    if count[0] == total:
        opened.set()
    seen = 0
    async for message in pubsub.listen():
        if message["type"] != "message":
            continue
        data = json.loads(events.parse(message["data"])[2])
        latencies.append((data["n"], time.time() - data["t"]))
        seen += 1
        if seen == EVENTS:
            break
    await pubsub.aclose()
    await client.aclose()


def _publish(r: redis.Redis, user_id: str) -> None:
    """Append the round's events to the user's log, GAP seconds apart."""
    for n in range(EVENTS):
        events.publish(r, JOB, user_id, {"type": "bench", "n": n, "t": time.time()})
        time.sleep(GAP)


async def _round(n: int, api: str, key: str, redis_url: str, user_id: str, baseline: bool,
                 held: list[int]) -> list[tuple[int, float]]:
    """Open ``n`` streams (or subscribers), publish, and return every latency; note the server's threads meanwhile."""
    latencies: list[tuple[int, float]] = []
    opened, count = asyncio.Event(), [0]
    if baseline:
        tasks = [asyncio.create_task(_redis_client(redis_url, events.user_log(user_id), opened, count, latencies, n))
                 for _ in range(n)]
        session = None
    else:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                        headers={"Authorization": f"Bearer {key}"},
                                        timeout=aiohttp.ClientTimeout(total=300))
        tasks = [asyncio.create_task(_sse_client(session, f"{api}/v1/events", opened, count, latencies, n))
                 for _ in range(n)]
    await asyncio.wait_for(opened.wait(), 120)
    held.append(SERVER.num_threads() if SERVER is not None else 0)
    await asyncio.get_running_loop().run_in_executor(None, _publish, redis.Redis.from_url(redis_url), user_id)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    if session is not None:
        await session.close()
    assert len(latencies) == n * EVENTS, f"{len(latencies)} of {n * EVENTS} events arrived"
    return latencies


def main(sizes: list[int]) -> None:
    """Measure each size against its baseline and print a table."""
    with stack(sims=1, workers=False) as running:
        key = user_key(running, "streams", role="service")
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "comfyq", "api", "--port", str(port), "--workers", "1"],
                                env=running.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    if requests.get(f"{api}/healthz", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.2)
            user_id = requests.get(f"{api}/v1/account", headers={"Authorization": f"Bearer {key}"},
                                   timeout=10).json()["user"]["id"]
            global SERVER
            server = SERVER = psutil.Process(proc.pid)
            print(f"stream bench: {EVENTS} events per round, {GAP:g} s apart, one API process (uvicorn, --workers 1)")
            print(f"{'streams':>8} {'sse p50':>9} {'sse p99':>9} {'fan-out':>9} {'redis p50':>10} {'redis p99':>10} "
                  f"{'fan-out':>9} {'ratio':>6} {'threads':>8} {'RSS MB':>7} {'CPU s':>6}")
            for n in sizes:
                held: list[int] = []
                base = asyncio.run(_round(n, api, key, running.env["COMFYQ_REDIS_URL"], user_id, True, []))
                cpu = server.cpu_times()
                ours = asyncio.run(_round(n, api, key, running.env["COMFYQ_REDIS_URL"], user_id, False, held))
                used = sum(server.cpu_times()[:2]) - sum(cpu[:2])
                row = []
                for got in (ours, base):
                    every = [latency for _, latency in got]
                    reach = [max(lat for i, lat in got if i == e) for e in range(EVENTS)]  # the last client's
                    row += [1000 * percentile(every, 50), 1000 * percentile(every, 99), 1000 * percentile(reach, 50)]
                print(f"{n:>8} {row[0]:>7.1f}ms {row[1]:>7.1f}ms {row[2]:>7.1f}ms {row[3]:>8.1f}ms {row[4]:>8.1f}ms "
                      f"{row[5]:>7.1f}ms {row[2] / row[5]:>5.1f}x {held[0]:>8} "
                      f"{server.memory_info().rss / 2**20:>7.0f} {used:>6.1f}")
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 500, 1000, 2000])
    os._exit(0)
