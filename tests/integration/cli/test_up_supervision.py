"""`comfyq up` as a supervisor: each child SIGKILLed in turn comes back, the API keeps answering, jobs still run.

One `comfyq up` takes the kills one after another; a second one, whose Flower
cannot bind its port, shows the crash-loop rule. Restart times (from the kill
to the new pid) are printed as ``RESTART <child> <seconds>`` (``-s`` shows them).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import requests

from comfyq.client import Client
from tests.conftest import Receiver
from tests.integration.conftest import admin_key_of, comfyq_up

pytestmark = pytest.mark.chaos
# The API last: its own restart is the one outage of the API that is expected.
# beat is the webhooks worker too under `comfyq up`: killing it kills both.
VICTIMS = ("gpu0", "sim0", "beat", "flower", "redis", "api")


def pids(data: Path) -> dict[str, int | None]:
    """Return the children's pids as `comfyq up` records them."""
    return json.loads((data / "up" / "pids.json").read_text())["children"]


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """Poll check() until it returns something true; return it."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def answer(url: str, headers: dict[str, str] | None = None) -> int | str:
    """Return the status of a GET, or the name of the error that stopped it."""
    try:
        return requests.get(url, headers=headers, timeout=10).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


@contextmanager
def watching(api: str, key: str) -> Iterator[dict[str, list[int | str]]]:
    """Poll /healthz and /v1/account every 0.1 s meanwhile; yield what each answered."""
    seen: dict[str, list[int | str]] = {"healthz": [], "account": []}
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.1):
            seen["healthz"].append(answer(f"{api}/healthz"))
            seen["account"].append(answer(f"{api}/v1/account", {"Authorization": f"Bearer {key}"}))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield seen
    finally:
        done.set()
        poller.join(15)


def left_behind(root: Path) -> list[str]:
    """Return the processes still working in ``root`` (every child of `comfyq up` there starts there)."""
    found = []
    for proc in psutil.process_iter(["pid", "cwd", "cmdline"]):
        if proc.info["cwd"] and Path(proc.info["cwd"]).is_relative_to(root):
            found.append(f"{proc.info['pid']} {' '.join(proc.info['cmdline'] or [])[:120]}")
    return found


def run_job(client: Client, receiver: Receiver, instance: str | None) -> dict:
    """Submit a small txt2img job with a webhook and follow its events; return it ended, once its webhook came."""
    job = client.submit("txt2img", {"prompt": "x", "width": 64, "height": 64, "steps": 2}, instance=instance,
                        webhook_url=f"{receiver.url}/hook")
    job = client.wait(job["id"])
    wait_for(lambda: any(job["id"].encode() in hit.body for hit in receiver.hits), 60, "its webhook arrived")
    return job


def test_every_child_killed_comes_back_while_the_api_answers_and_jobs_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    receiver = Receiver()
    extra = {"COMFYQ_WEBHOOK_ALLOW": "127.0.0.1", "COMFYQ_RECONCILE_INTERVAL": "2"}
    try:
        with comfyq_up(tmp_path, extra) as (proc, ports, lines):
            key = admin_key_of(proc, lines)
            api, flower = f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['flower']}"
            client = Client(api, key)
            assert run_job(client, receiver, None)["status"] == "succeeded"
            measured = {}
            for victim in VICTIMS:
                old = pids(data)[victim]
                assert old is not None and proc.poll() is None
                group = psutil.Process(old).children(recursive=True)  # pool children, uvicorn workers
                with watching(api, key) as seen:
                    killed_at, mark = time.monotonic(), len(lines)
                    os.kill(old, signal.SIGKILL)
                    new = wait_for(lambda: pids(data)[victim] not in (None, old) and pids(data)[victim], 15,
                                   f"{victim} restarted")
                    measured[victim] = time.monotonic() - killed_at
                    print(f"\nRESTART {victim} {measured[victim]:.2f}")
                    assert measured[victim] < 5, (victim, measured[victim])
                    assert psutil.pid_exists(new)
                    _, alive = psutil.wait_procs(group, timeout=10)
                    assert not alive, f"{victim} left {alive}"
                    wait_for(lambda: answer(f"{api}/healthz") == 200, 60, f"healthy after {victim}")
                    job = run_job(client, receiver, "gpu0" if victim in ("gpu0", "sim0") else None)
                    assert job["status"] == "succeeded", job
                    if victim == "gpu0":
                        assert job["instance"] == "gpu0"
                    wait_for(lambda: answer(f"{flower}/healthcheck") == 200, 60, f"Flower answers after {victim}")
                    if victim == "beat":  # its schedule goes on (a reconcile pass every 2 s)
                        wait_for(lambda: any("beat |" in line and "Sending due task" in line
                                             for line in lines[mark:]), 60, "beat sends its tasks again")
                said = "".join(lines[mark:])
                assert f"comfyq up: {victim} exited with code -9; restarting in 0.5 s (1st restart" in said, said
                if victim == "api":
                    continue  # the API's own restart is an outage: nothing answered for a moment
                assert seen["account"] and set(seen["account"]) == {200}, (victim, seen["account"])
                # /healthz reports Redis: while it restarts, the API answers 503 (degraded), never fails to answer.
                allowed = {200, 503} if victim == "redis" else {200}
                assert seen["healthz"] and set(seen["healthz"]) <= allowed, (victim, seen["healthz"])
            print("\nRESTARTS " + " ".join(f"{k}={v:.2f}" for k, v in measured.items()))
            proc.send_signal(signal.SIGINT)
            assert proc.wait(90) == 0, "".join(lines[-30:])
        assert not (data / "up" / "pids.json").exists()
        wait_for(lambda: not left_behind(tmp_path), 15, "no process left behind")
    finally:
        receiver.close()


def test_a_child_that_keeps_dying_stops_the_stack_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:  # Flower cannot bind its port, so it exits at every start
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with comfyq_up(tmp_path, flower_port=taken.getsockname()[1]) as (proc, _, lines):
            assert proc.wait(150) == 1, "".join(lines[-30:])
            said = "".join(lines)
    assert "comfyq up: flower exited with code 1; restarting in 0.5 s (1st restart in the last minute)" in said
    assert "restarting in 4 s (4th restart in the last minute)" in said
    verdict = [line for line in lines if "died 5 times" in line]
    assert len(verdict) == 1, said[-3000:]
    assert verdict[0].startswith("comfyq up: flower died 5 times within 60 s, last with code 1; its last output: ")
    assert "Address already in use" in verdict[0] and verdict[0].rstrip().endswith("; stopping")
    assert "comfyq up: stopped" in said
    wait_for(lambda: not left_behind(tmp_path), 15, "no process left behind")
