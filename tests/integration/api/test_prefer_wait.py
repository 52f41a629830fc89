"""One-call runs: ``Prefer: wait=N`` on submissions, against a real `comfyq api` (uvicorn, one process, one
Flask thread) in front of the test stack's workers and simulators."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import aiohttp
import psutil
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from comfyq.client import Client
from tests.conftest import txt2img
from tests.integration.conftest import api_server, new_key, wait_until

MOST = 120  # COMFYQ_MAX_PREFER_WAIT of this server


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str], workers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[str, Path]]:
    """One `comfyq api` process on the test stack; its URL and log."""
    log = tmp_path_factory.mktemp("api") / "api.log"
    with api_server({**stack_env, "COMFYQ_MAX_PREFER_WAIT": str(MOST)}, log) as url:
        yield url, log


def slow(steps: int, seconds: float, seed: int = 1) -> dict[str, Any]:
    """A text-to-image graph whose sampler takes ``seconds`` per step on the simulator."""
    return txt2img(seed=seed, steps=steps, sim={"3": {"step_seconds": seconds}})


def post(url: str, key: str, path: str, body: dict[str, Any], prefer: str | None) -> requests.Response:
    """POST ``body`` as the key's owner, with a ``Prefer`` header if given."""
    headers = {"Authorization": f"Bearer {key}", **({"Prefer": prefer} if prefer else {})}
    return requests.post(url + path, json=body, headers=headers, timeout=MOST + 30)


def server_pid(url: str) -> int:
    """Return the pid of the `comfyq api` process serving ``url``."""
    port = str(urlsplit(url).port)
    found = [p.pid for p in psutil.process_iter(["cmdline"])
             if "api" in (p.info["cmdline"] or []) and port in (p.info["cmdline"] or [])]
    assert len(found) == 1, found
    return found[0]


def threads_of(pid: int) -> int:
    """Return how many threads process ``pid`` has now."""
    return len(os.listdir(f"/proc/{pid}/task"))


def test_a_short_job_is_answered_200_with_its_outputs(api: tuple[str, Path], app: Flask) -> None:
    url, _ = api
    key = new_key(app, "onecall")
    began = time.monotonic()
    answer = post(url, key, "/v1/jobs", {"workflow": slow(10, 0.1), "instance": "gpu0"}, "wait=10")
    took = time.monotonic() - began
    assert answer.status_code == 200, answer.text
    assert answer.headers["Preference-Applied"] == "wait=10" and took < 10
    job = answer.json()
    assert job["status"] == "succeeded" and job["finished_at"] and job["error"] is None
    assert [o["node_id"] for o in job["outputs"]] == ["9"]
    # The answer is the job as GET tells it, with URLs that download the outputs.
    assert job == requests.get(f"{url}/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {key}"},
                               timeout=30).json()
    png = requests.get(job["outputs"][0]["url"], headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_a_template_run_waits_like_a_submission(api: tuple[str, Path], app: Flask) -> None:
    url, _ = api
    key = new_key(app, "onecallrun")
    answer = post(url, key, "/v1/templates/txt2img/runs", {"prompt": "a lighthouse", "steps": 4}, "wait=60")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Preference-Applied"] == "wait=60"
    job = answer.json()
    assert job["template"] == "txt2img" and job["status"] == "succeeded" and len(job["outputs"]) == 1


def test_a_failed_job_is_answered_200_with_its_error(api: tuple[str, Path], app: Flask) -> None:
    url, _ = api
    graph = txt2img(seed=3, steps=2, sim={"3": {"fail": "out of memory"}})
    answer = post(url, new_key(app, "onecallfail"), "/v1/jobs", {"workflow": graph}, "respond-async, wait=30")
    assert answer.status_code == 200 and answer.headers["Preference-Applied"] == "wait=30"
    job = answer.json()
    assert job["status"] == "failed" and "out of memory" in job["error"]["message"] and job["outputs"] == []


def test_a_long_job_is_answered_202_at_the_deadline_and_runs_on(api: tuple[str, Path], app: Flask) -> None:
    url, _ = api
    key = new_key(app, "longcall")
    began = time.monotonic()
    answer = post(url, key, "/v1/jobs", {"workflow": slow(20, 1.0), "instance": "gpu1"}, "wait=10")
    took = time.monotonic() - began
    assert answer.status_code == 202, answer.text
    assert answer.headers["Preference-Applied"] == "wait=10"
    assert 9.5 <= took < 19  # the deadline, not the job's end
    job = answer.json()
    assert job["status"] in ("pending", "queued")  # the submission's own answer, as without waiting
    ended = Client(url, key).wait(job["id"])
    assert ended["status"] == "succeeded" and ended["outputs"]


def test_a_client_that_leaves_while_waiting_cancels_nothing(api: tuple[str, Path], app: Flask) -> None:
    url, log = api
    key = new_key(app, "leaver")
    client = Client(url, key)
    body = json.dumps({"workflow": slow(30, 0.2, seed=5), "instance": "gpu0"}).encode()
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: comfyq\r\nAuthorization: Bearer {key}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nPrefer: wait=60\r\n\r\n"
                  ).encode() + body)
    wait_until(lambda: client.jobs()["total"] == 1, timeout=30)
    job_id = client.jobs()["items"][0]["id"]
    wait_until(lambda: client.job(job_id)["status"] == "running", timeout=30)
    sock.close()  # mid-job, with no answer yet
    ended = client.wait(job_id)
    assert ended["status"] == "succeeded" and ended["outputs"]
    assert "Traceback" not in log.read_text()


def test_a_batch_waits_for_every_job(api: tuple[str, Path], app: Flask) -> None:
    url, _ = api
    key = new_key(app, "batchcall")
    body = {"template": "txt2img", "params": {"prompt": "a lighthouse", "steps": 2}, "grid": {"seed": [1, 2, 3]}}
    answer = post(url, key, "/v1/batches", body, f"wait={MOST * 10}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Preference-Applied"] == f"wait={MOST}"  # the most this server waits
    batch = answer.json()
    assert batch["status"] == "succeeded" and len(batch["jobs"]) == 3
    assert all(job["status"] == "succeeded" and job["outputs"][0]["url"] for job in batch["jobs"])


@pytest.mark.parametrize("n, prefer", enumerate(["wait=soon", "wait=0", "wait=-5", "wait", "wait=1.5",
                                                  "respond-async", "return=minimal"]))
def test_a_malformed_or_other_preference_is_ignored(api: tuple[str, Path], app: Flask, n: int, prefer: str) -> None:
    url, _ = api
    answer = post(url, new_key(app, f"malformed{n}"), "/v1/jobs", {"workflow": txt2img(seed=6, steps=2)}, prefer)
    assert answer.status_code == 202 and "Preference-Applied" not in answer.headers  # RFC 7240: never a 4xx
    assert answer.json()["status"] in ("pending", "queued")


def test_a_plain_wsgi_server_ignores_the_preference(client: FlaskClient) -> None:
    answer = client.post("/v1/jobs", json={"workflow": txt2img(seed=8, steps=2)}, headers={"Prefer": "wait=10"})
    assert answer.status_code == 202 and "Preference-Applied" not in answer.headers
    assert answer.get_json()["status"] in ("pending", "queued")


def test_two_hundred_waiting_requests_hold_no_more_threads_than_an_idle_server(
        api: tuple[str, Path], app: Flask) -> None:
    url, log = api
    key = new_key(app, "crowd", max_running=1)
    client = Client(url, key)
    pid = server_pid(url)
    # Today's idle server, after the work it does without waiting: a submission (the job every other one will
    # wait behind), reads, and an event stream followed long enough for the hub's look at the database. (That
    # look runs in one thread of the process, shared by every stream and wait: a server that never held a
    # stream has one thread fewer, 6 against 7 when this was written.)
    blocker = client.submit(workflow=slow(600, 0.1, seed=9), instance="gpu1")
    wait_until(lambda: client.job(blocker["id"])["status"] == "running", timeout=30)
    seen = 0
    for event in client.events(blocker["id"]):
        seen += 1
        if event.type == "progress" and event.data.get("value", 0) >= 70:  # 7 s: past the hub's 5 s round
            break
    idle = threads_of(pid)

    answers: list[tuple[int, str | None, dict[str, Any]]] = []

    async def crowd() -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=MOST + 60)) as s:
            async def one(n: int) -> None:
                async with s.post(f"{url}/v1/jobs", json={"workflow": txt2img(seed=100 + n, steps=2)},
                                  headers={"Authorization": f"Bearer {key}", "Prefer": "wait=100"}) as r:
                    answers.append((r.status, r.headers.get("Preference-Applied"), await r.json()))
            await asyncio.gather(*(one(n) for n in range(200)))

    crowding = threading.Thread(target=lambda: asyncio.run(crowd()))
    crowding.start()
    most = idle
    deadline = time.monotonic() + 120
    while client.jobs(status="pending")["total"] < 200:  # every request submitted, and waiting
        assert time.monotonic() < deadline and crowding.is_alive()
        most = max(most, threads_of(pid))
        time.sleep(0.05)
    waiting = [job["id"] for page in (1, 2) for job in client.jobs(status="pending", page=page, page_size=100)["items"]]
    for _ in range(40):
        most = max(most, threads_of(pid))
        time.sleep(0.05)
    assert not answers  # all 200 still waiting
    for job_id in waiting:
        client.cancel(job_id)  # each ends: its waiting request is answered with it
        most = max(most, threads_of(pid))
    while crowding.is_alive():
        most = max(most, threads_of(pid))
        crowding.join(0.05)
        assert time.monotonic() < deadline
    client.cancel(blocker["id"])
    assert most <= idle, f"{most} threads while 200 requests waited; {idle} idle"
    assert len(answers) == 200 and {(status, applied) for status, applied, _ in answers} == {(200, "wait=100")}
    assert {job["status"] for _, _, job in answers} == {"cancelled"}
    assert sorted(job["id"] for _, _, job in answers) == sorted(waiting)
    assert seen and "Traceback" not in log.read_text()


def test_the_client_runs_a_short_job_in_one_call(api: tuple[str, Path], app: Flask, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = api
    client = Client(url, new_key(app, "clientcall"))
    job = client.submit(workflow=txt2img(seed=11, steps=2), wait=30)
    assert job["status"] == "succeeded" and job["outputs"]

    def no_stream(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a job that ended within the hold needs no event stream")

    monkeypatch.setattr(client, "events", no_stream)
    paths = client.run(workflow=txt2img(seed=12, steps=2), folder=tmp_path)
    assert len(paths) == 1 and paths[0].read_bytes().startswith(b"\x89PNG")


def test_the_cli_holds_a_short_job_and_downloads_it_without_a_progress_bar(
        api: tuple[str, Path], app: Flask, tmp_path: Path) -> None:
    url, _ = api
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps(txt2img(seed=13, steps=2)))
    done = subprocess.run([sys.executable, "-m", "comfyq", "submit", str(graph), "--hold", "30", "--out",
                           str(tmp_path / "out"), "--api-url", url, "--api-key", new_key(app, "clicall")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert printed[0].startswith("job ") and " succeeded on " in printed[0]
    assert Path(printed[1]).read_bytes().startswith(b"\x89PNG")
    assert "waiting" not in done.stderr  # no progress bar: the answer was the ended job
