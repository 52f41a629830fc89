"""`comfyq flower` alone: a generated password beyond loopback, open pages but a closed API on loopback."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import requests

from comfyq.sim.process import free_port
from tests.integration.conftest import stop_group

QUEUES = ["comfy", "comfy.gpu0", "comfy.gpu1", "control", "webhooks"]


@contextlib.contextmanager
def flower(tmp_path: Path, redis_url: str, address: str) -> Iterator[tuple[str, str]]:
    """Run `comfyq flower` bound to ``address``; yield its URL (on loopback) and the line it printed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYQ_", "FLOWER_"))}
    env.update(COMFYQ_DATA_DIR=str(tmp_path), COMFYQ_REDIS_URL=redis_url,
               COMFYQ_INSTANCES="gpu0=http://127.0.0.1:1,gpu1=http://127.0.0.1:2", PYTHONUNBUFFERED="1")
    log = tmp_path / "flower.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "comfyq", "flower", "--address", address, "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "comfyq flower: " not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        line = next(l for l in log.read_text().splitlines() if l.startswith("comfyq flower: "))
        yield f"http://127.0.0.1:{port}", line
    finally:
        stop_group(proc)


def test_beyond_loopback_flower_asks_for_a_generated_password(tmp_path: Path, redis_url: str) -> None:
    with flower(tmp_path, redis_url, "0.0.0.0") as (url, line):
        secret = tmp_path / "flower-password"
        assert f"user 'admin' with the password in {secret}" in line
        auth = ("admin", secret.read_text().strip())
        for path in ("/", "/broker", "/api/workers", "/api/queues/length"):
            assert requests.get(f"{url}{path}", timeout=10).status_code == 401, path
        # No worker runs, yet every queue is listed, at once.
        lengths = requests.get(f"{url}/api/queues/length", auth=auth, timeout=10)
        assert [q["name"] for q in lengths.json()["active_queues"]] == QUEUES
        assert all(f">{q}<" in requests.get(f"{url}/broker", auth=auth, timeout=10).text for q in QUEUES)


def test_on_loopback_without_a_password_pages_are_open_and_the_api_says_how_to_open_it(
        tmp_path: Path, redis_url: str) -> None:
    with flower(tmp_path, redis_url, "127.0.0.1") as (url, line):
        assert "its /api answers 401 until COMFYQ_FLOWER_PASSWORD is set" in line
        assert requests.get(f"{url}/broker", timeout=10).status_code == 200
        assert requests.get(f"{url}/api/workers", timeout=10).status_code == 401
        assert not (tmp_path / "flower-password").exists()
