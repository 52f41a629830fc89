"""`comfyq up`: the whole stack as child processes, a job through it, and a clean stop."""
from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import psutil
import pytest
import requests

from comfyq.client import Client, Conflict, Invalid, NotFound
from tests.integration.conftest import comfyq_up

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int], list[str]]]:
    """`comfyq up` on free ports with its data in ``tmp_path``."""
    with comfyq_up(tmp_path) as running:
        yield running


def test_up_serves_runs_a_job_and_stops_clean(up, tmp_path: Path) -> None:
    proc, ports, lines = up
    api = f"http://127.0.0.1:{ports['api']}"
    deadline = time.monotonic() + 90
    while not any("Ctrl-C stops everything" in l for l in lines):
        assert proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    assert lines[0].startswith("comfyq up: no COMFYQ_INSTANCES set, so starting 2 ComfyUI simulators")
    assert requests.get(f"{api}/healthz", timeout=5).json()["status"] == "ok"
    # The first start made user admin and printed its key, the only time it is shown.
    printed = next(l for l in lines if "created user admin" in l)
    key = printed.split()[-1]
    assert key.startswith("cq_") and requests.get(f"{api}/v1/jobs", timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {key}"}
    workflow = json.loads((ROOT / "templates_wf/txt2img/workflow.json").read_text())
    workflow["5"]["inputs"].update(width=64, height=64)
    job = requests.post(f"{api}/v1/jobs", json={"workflow": workflow}, headers=auth, timeout=5).json()
    while job["status"] not in ("succeeded", "failed", "cancelled", "timed_out"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = requests.get(f"{api}/v1/jobs/{job['id']}", headers=auth, timeout=5).json()
    assert job["status"] == "succeeded", job
    image = requests.get(job["outputs"][0]["url"], headers=auth, timeout=5)
    assert image.content[:4] == b"\x89PNG"
    # It says how to open ComfyUI's editor for a student; doing as it says works.
    hint = next(l for l in lines if "/v1/editor-sessions" in l)
    assert f"curl -s -X POST {api}/v1/editor-sessions" in hint and '"user": "student1"' in hint
    assert "comfyq users create student1 --role student --credits 20" in hint  # the same, through the admin API:
    requests.post(f"{api}/v1/admin/users", json={"name": "student1", "role": "student", "credits": 20},
                  headers=auth, timeout=5)
    link = requests.post(f"{api}/v1/editor-sessions", json={"user": "student1"}, headers=auth, timeout=5).json()["link"]
    editor = requests.Session()
    assert editor.get(link, timeout=10).status_code == 200 and "<title>ComfyUI</title>" in editor.get(
        f"{api}/comfy/", timeout=10).text
    # Flower's Broker tab lists every queue comfyq declares from its first load (see test_up_flower.py).
    broker = requests.get(f"http://127.0.0.1:{ports['flower']}/broker", timeout=10).text
    assert all(f">{q}<" in broker for q in ("comfy", "comfy.gpu0", "comfy.gpu1", "control", "webhooks")), broker

    small = tmp_path / "small.json"
    small.write_text(json.dumps(workflow))
    cli = subprocess.run([sys.executable, "-m", "comfyq", "submit", str(small), "--wait", "--api-url", api, "--api-key", key,
                          "--out", str(tmp_path / "got")], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    printed = cli.stdout.strip().splitlines()
    assert printed[0].startswith("job ") and "queued on comfy" in printed[0]
    saved = Path(printed[-1])
    assert saved.parent.parent == tmp_path / "got" and saved.read_bytes()[:4] == b"\x89PNG"
    client = Client(api, key)  # the Python client: templates, raw workflows, uploads, batches, cancel
    slow = json.loads(json.dumps(workflow))
    slow["3"]["_meta"] = {"sim": {"node_seconds": 1.0}}
    ahead = [client.submit(workflow=slow, instance="gpu0") for _ in range(2)]  # one runs, one waits
    cli = subprocess.run([sys.executable, "-m", "comfyq", "submit", "txt2img", "-p", "prompt=a city at night",
                          "-p", "steps=3", "-p", "width=64", "-p", "height=64", "--instance", "gpu0", "--wait",
                          "--api-url", api, "--api-key", key, "--out", str(tmp_path / "got")],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    bar = cli.stderr.replace("\r", "\n")  # the live progress bar, one line per update
    assert re.search(r"(pending|queued), 1 ahead", bar) and "started on gpu0" in bar, bar
    assert "Sampling 3/3" in bar and "succeeded 100%" in bar, bar
    assert Path(cli.stdout.strip().splitlines()[-1]).read_bytes()[:4] == b"\x89PNG"
    assert [client.job(j["id"])["status"] for j in ahead] == ["succeeded", "succeeded"]

    made = client.wait(client.submit("txt2img", {"prompt": "x", "width": 64, "height": 64, "steps": 2})["id"])
    assert made["status"] == "succeeded" and made["template"] == "txt2img"
    slow["3"]["_meta"] = {"sim": {"node_seconds": 2.0}}
    assert client.cancel(client.submit(workflow=slow)["id"])["status"] == "cancelled"
    with pytest.raises(Invalid) as refused:
        client.submit("txt2img", {"prompt": "x", "steps": 0})
    assert refused.value.status == 422 and "steps" in refused.value.message
    with pytest.raises(NotFound):
        client.job("00000000-0000-0000-0000-000000000000")
    with pytest.raises(Conflict):
        client.cancel(made["id"])
    picture = client.upload(saved)  # an output of the CLI run above, sent back as an input
    params = {"prompt": "again", "image": picture["id"], "denoise": 0.5, "steps": 2}
    assert client.estimate("img2img", params)["cost"] >= 1
    seen: list[Any] = []
    files = client.run("img2img", params, folder=tmp_path / "run", on_event=seen.append)
    assert len(files) == 1 and files[0].read_bytes()[:4] == b"\x89PNG"
    assert seen[-1].type == "succeeded" and files[0].name == seen[-1].data["outputs"][0]["name"]
    assert "started" in [e.type for e in seen] and any(e.data.get("label") for e in seen if e.type == "progress")
    batch = client.batch("txt2img", {"prompt": "x", "width": 64, "height": 64}, variants=[{"steps": 2}, {"steps": 3}])
    assert [client.wait(j["id"])["status"] for j in batch["jobs"]] == ["succeeded", "succeeded"]
    jobs_cli = [sys.executable, "-m", "comfyq", "jobs"]
    listed = subprocess.run([*jobs_cli, "list", "--status", "succeeded", "--api-url", api, "--api-key", key],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and batch["jobs"][0]["id"] in listed.stdout, listed.stderr
    fetched = subprocess.run([*jobs_cli, "download", made["id"], "--out", str(tmp_path / "cli"), "--api-url", api,
                              "--api-key", key], capture_output=True, text=True, timeout=60)
    assert fetched.returncode == 0 and Path(fetched.stdout.strip()).read_bytes()[:4] == b"\x89PNG", fetched.stderr
    sent = subprocess.run([sys.executable, "-m", "comfyq", "upload", str(saved), "--api-url", api, "--api-key", key],
                          capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0 and sent.stdout.split()[0] == picture["id"], sent.stderr  # the same bytes: same id
    running = requests.post(f"{api}/v1/jobs", json={"workflow": slow}, headers=auth, timeout=5).json()
    while requests.get(f"{api}/v1/jobs/{running['id']}", headers=auth, timeout=5).json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    family = psutil.Process(proc.pid).children(recursive=True)
    assert len(family) >= 8  # redis, 2 sims, api, 2 workers (+ pool children), beat (the webhooks worker too), flower
    assert sum(" beat --webhooks" in " ".join(p.cmdline()) for p in family) == 1  # one process, no child
    assert sum(" webhooks" in " ".join(p.cmdline()) for p in family) == 0
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, "".join(lines[-30:])
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [p.info if hasattr(p, "info") else p for p in alive]
    assert "comfyq up: stopped" in "".join(lines)
    # Workers shut down warm: the job that was running when Ctrl-C came still finished.
    with sqlite3.connect(tmp_path / "data" / "comfyq.db") as conn:
        status = conn.execute("SELECT status FROM jobs WHERE id = ?", (running["id"],)).fetchone()[0]
    assert status == "succeeded"
    assert (tmp_path / "data" / "redis" / "appendonly.aof").exists()  # queued work survives a restart
