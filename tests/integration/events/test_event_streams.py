"""Event streams over real HTTP: `comfyq api` (uvicorn, one process) in front of the test stack's workers."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import aiohttp
import psutil
import pytest
import redis
import requests
from flask import Flask

from comfyq.events import log as events
from comfyq.db.extensions import db
from comfyq.client import Client, NotFound, Unauthorized
from comfyq.db.models import Job
from comfyq.sim.process import free_port
from comfyq.client.sse import Event, parse
from tests.conftest import txt2img
from tests.integration.conftest import api_server, new_key

FINAL = {"succeeded", "failed", "timed_out", "cancelled"}


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str], workers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `comfyq api` process on the test stack; its URL."""
    with api_server(stack_env, tmp_path_factory.mktemp("api") / "api.log") as url:
        yield url


def slow(steps: int, seconds: float = 0.05, seed: int = 1) -> dict[str, Any]:
    """A text-to-image graph whose sampler takes ``seconds`` per step on the simulator."""
    return txt2img(seed=seed, steps=steps, sim={"3": {"step_seconds": seconds}})


def logged(rds: redis.Redis, job_id: str, after: str = events.START, log: str | None = None
           ) -> list[tuple[str, dict[str, Any]]]:
    """Return a job's event log (or ``log``), from after id ``after``."""
    return [(n, json.loads(body)) for n, body in events.read_after(rds, log or events.job_log(job_id), after)]


def live(got: list[Event]) -> list[tuple[str | None, dict[str, Any]]]:
    """Return (id, data) of the events after a stream's first one."""
    return [(e.id, e.data) for e in got[1:]]


def test_a_stream_carries_every_event_in_order_and_ends_with_the_final_one(
        api: str, keys: dict[str, str], rds: redis.Redis) -> None:
    client = Client(api, keys["svc"])
    client.submit(workflow=slow(20, seed=2), instance="gpu0")  # so the job waits and its stream opens first
    job = client.submit(workflow=slow(12), instance="gpu0")
    got = [e for e in client.events(job["id"]) if e.id is not None]  # without the live position updates
    assert got[0].type == "queued" and got[-1].type == "succeeded"
    assert got[-1].data["outputs"][0]["url"].startswith(f"/v1/jobs/{job['id']}/")
    # Everything logged after the opening reached the stream once, in order, and nothing else did.
    assert live(got) == logged(rds, job["id"], after=got[0].id)
    steps = [e.data["value"] for e in got if e.type == "progress" and e.data["node"] == "3" and e.data["max"]]
    assert steps == list(range(steps[0], 13)) and steps[-1] == 12  # every sampler step from the simulator
    assert [e.data["fraction"] for e in got if e.type == "progress"] == sorted(
        e.data["fraction"] for e in got if e.type == "progress")
    assert next(e for e in got if e.type == "output").data["node"] == "9"
    kinds = [e.type for e in got]
    assert kinds.index("started") < kinds.index("progress") < kinds.index("output") < kinds.index("succeeded")


def test_a_late_client_gets_the_current_state_first(api: str, keys: dict[str, str], app: Flask,
                                                     rds: redis.Redis) -> None:
    client = Client(api, keys["svc"])
    job = client.submit(workflow=slow(40), instance="gpu1")
    deadline = time.monotonic() + 30
    while (client.job(job["id"])["progress"] or {}).get("value", 0) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    got = list(client.events(job["id"]))
    assert got[0].type == "started" and got[0].data["instance"] == "gpu1"
    assert got[1].type == "progress" and got[1].data["label"] and got[1].data["value"] >= 5
    # The state is its latest start and progress, as logged; then every later event, once, in order.
    log = logged(rds, job["id"])
    assert [(e.id, e.data) for e in got[:2]] == [m for m in log if m[0] in (got[0].id, got[1].id)]
    assert live(got[1:]) == logged(rds, job["id"], after=got[1].id)
    assert got[-1].type == "succeeded"
    # Once the job ended, a stream is its final event alone, under its id in the log.
    again = list(client.events(job["id"]))
    assert [(e.type, e.id) for e in again] == [("succeeded", log[-1][0])]


def test_last_event_id_resumes_without_gap_or_repeat(api: str, keys: dict[str, str], rds: redis.Redis) -> None:
    client = Client(api, keys["svc"])
    job = client.submit(workflow=slow(20, seed=7), instance="gpu0")
    head: list[Event] = []
    for event in client.events(job["id"]):
        head.append(event)
        if len(head) == 6:
            break  # the client goes away mid-job
    resumed = list(client.events(job["id"], last_event_id=head[-1].id))
    assert resumed[-1].type == "succeeded"
    assert [(e.id, e.data) for e in resumed] == logged(rds, job["id"], after=str(head[-1].id))


def test_a_waiting_job_reports_its_position_as_it_moves(api: str, app: Flask) -> None:
    client = Client(api, new_key(app, "streamq", max_running=1))
    # One runs at a time, each for about 1.5 s: the last waits behind its owner's 2 older ones, then 1, then 0.
    jobs = [client.submit(workflow=slow(15, 0.1, seed=20 + i)) for i in range(4)]
    got = list(client.events(jobs[3]["id"]))
    waiting = [e for e in got if e.type == "queued"]
    assert waiting[0].data["status"] == "pending" and waiting[0].data["position"] >= 2  # 3 while the first is queued
    positions = [e.data["position"] for e in waiting if e.data["position"] is not None]
    assert positions == sorted(positions, reverse=True) and {2, 1} <= set(positions), positions
    updates = [e for e in waiting if e.id is None]  # position updates come between logged events
    assert updates and all("estimated_start" in e.data for e in updates), updates
    kinds = [e.type for e in got]
    assert kinds.index("started") > max(i for i, e in enumerate(got) if e.type == "queued")
    assert kinds[-1] == "succeeded"


def test_the_user_stream_has_every_event_of_own_jobs_only(api: str, app: Flask, rds: redis.Redis) -> None:
    mine, theirs = Client(api, new_key(app, "streamer")), Client(api, new_key(app, "other"))
    seen: list[Event] = []
    opened = threading.Event()

    def follow() -> None:
        for event in mine.events():
            seen.append(event)
            opened.set()
            if sum(e.type == "succeeded" for e in seen) == 2:
                return

    with requests.get(f"{api}/v1/events", headers={"Authorization": mine.session.headers["Authorization"]},
                      stream=True, timeout=5) as first:
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(0.5)  # the stream is open before the jobs exist
    ours = [mine.submit(workflow=slow(5, 0.02, seed=40 + i)) for i in range(2)]
    other = theirs.submit(workflow=slow(5, 0.02, seed=50))
    reader.join(60)
    assert not reader.is_alive()
    assert {e.job_id for e in seen} == {j["id"] for j in ours} and other["id"] not in {e.job_id for e in seen}
    for job in ours:
        assert [e.data for e in seen if e.job_id == job["id"]] == [e for _, e in logged(rds, job["id"])]
    with app.app_context():
        log = events.user_log(db.session.get(Job, ours[0]["id"]).user_id)
    assert [(e.id, e.data) for e in seen] == logged(rds, "", log=log)  # the user's log, every id in it


def test_streams_refuse_what_they_should(api: str, keys: dict[str, str]) -> None:
    job = Client(api, keys["alice"]).submit(workflow=slow(2, 0.01))
    with pytest.raises(NotFound, match="no job"):
        next(Client(api, keys["bob"]).events(job["id"]))
    with pytest.raises(Unauthorized, match="API key"):
        next(Client(api).events(job["id"]))
    with pytest.raises(NotFound):
        next(Client(api, keys["alice"]).events("nope"))
    bad = requests.get(f"{api}/v1/jobs/{job['id']}/events", timeout=10,
                       headers={"Authorization": f"Bearer {keys['alice']}", "Last-Event-ID": "x" * 40})
    assert bad.status_code == 200  # a malformed Last-Event-ID opens afresh, with the current state
    assert next(parse(bad.text.splitlines())).job_id == job["id"]


async def _follow(session: aiohttp.ClientSession, url: str, ready: asyncio.Queue[None]) -> list[Event]:
    """Read one stream to its end."""
    async with session.get(url) as response:
        assert response.status == 200
        ready.put_nowait(None)
        lines = [line.decode().rstrip("\n") async for line in response.content]
    return list(parse(lines))


async def _many(api: str, key: str, job_id: str, count: int, start: Any) -> list[list[Event]]:
    """Open ``count`` streams of one job, start it once all are open, and read them all."""
    ready: asyncio.Queue[None] = asyncio.Queue()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {key}"},
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        tasks = [asyncio.create_task(_follow(session, f"{api}/v1/jobs/{job_id}/events", ready))
                 for _ in range(count)]
        for _ in range(count):
            await asyncio.wait_for(ready.get(), 60)
        await asyncio.get_running_loop().run_in_executor(None, start)
        return await asyncio.gather(*tasks)


def test_one_api_process_holds_hundreds_of_streams_without_a_thread_each(
        api: str, keys: dict[str, str], rds: redis.Redis) -> None:
    client = Client(api, keys["svc"])
    # Keeps the job below waiting until all streams are open (then it is cancelled), however long that takes.
    blocker = client.submit(workflow=slow(600, 0.1, seed=60), instance="gpu0")
    job = client.submit(workflow=slow(10, 0.05, seed=61), instance="gpu0")
    process = next(p for p in psutil.Process().children(recursive=True)
                   if f"--port {api.rsplit(':', 1)[1]}" in " ".join(p.cmdline()))
    server = [p for p in process.children(recursive=True)] or [process]
    threads: list[int] = []

    def start() -> None:
        threads.append(sum(p.num_threads() for p in server))
        client.cancel(blocker["id"])

    streams = asyncio.run(_many(api, keys["svc"], job["id"], 300, start))
    for got in streams:
        numbered = [e for e in got if e.id is not None]
        assert numbered[0].type == "queued" and numbered[-1].type == "succeeded"
        assert live(numbered) == logged(rds, job["id"], after=numbered[0].id)
    assert threads[0] < 60, f"{threads[0]} threads for 300 streams"


def test_a_plain_wsgi_server_ends_each_opening_and_the_client_still_follows(
        stack_env: dict[str, str], keys: dict[str, str], rds: redis.Redis, workers: dict[str, Any]) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "comfyq.wsgi:app"],
                            env={**os.environ, **stack_env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                requests.get(f"{url}/healthz", timeout=5)
                break
            except requests.RequestException:  # not listening, or still loading the app
                time.sleep(0.1)
        client = Client(url, keys["svc"])
        job = client.submit(workflow=slow(40, 0.1, seed=70), instance="gpu1")  # about 4 s: a few reconnects
        opening = requests.get(f"{url}/v1/jobs/{job['id']}/events", timeout=10,
                               headers={"Authorization": f"Bearer {keys['svc']}"})
        assert "X-Comfyq-Hold" not in opening.headers  # nothing here holds it: the stream ends with its opening
        got = list(client.events(job["id"]))
    finally:
        proc.terminate()
        proc.wait(15)
    assert got[-1].type == "succeeded" and [e.type for e in got].count("succeeded") == 1
    numbered = [(e.id, e.data) for e in got if e.id is not None and e.type != "queued"]
    assert all(m in logged(rds, job["id"]) for m in numbered)  # each resumed where the last ended: no repeats
    assert len({event_id for event_id, _ in numbered}) == len(numbered)
