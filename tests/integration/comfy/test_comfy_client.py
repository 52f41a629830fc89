"""ComfyClient against the real simulator process: every call, and the shared fixtures."""
from __future__ import annotations

import copy
import hashlib
import io
import itertools
import time
import uuid
from typing import Any

import pytest
from PIL import Image

from comfyq.comfy import ComfyClient, ComfyProtocolError, ExecutionInterrupted, OutputMissing
from comfyq.sim.process import SimProcess
from tests.integration.conftest import wait_until

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

GRAPH: dict[str, Any] = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
    "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "5": {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
        "seed": 1, "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0}},
    "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
    "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "t"}},
}
_seeds = itertools.count(1000)


def graph(steps: int = 4, knobs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return the test graph with a fresh seed (so nothing is cached) and node knobs."""
    prompt = copy.deepcopy(GRAPH)
    prompt["5"]["inputs"]["seed"] = next(_seeds)
    prompt["5"]["inputs"]["steps"] = steps
    for node_id, sim in (knobs or {}).items():
        prompt[node_id]["_meta"] = {"sim": sim}
    return prompt


def new_id() -> str:
    """Return a fresh prompt id."""
    return uuid.uuid4().hex


def slow(seconds_per_step: float) -> dict[str, Any]:
    """Return extra_data making every sampler step take this long."""
    return {"sim": {"step_seconds": seconds_per_step}}


# -- server facts --------------------------------------------------------------

def test_server_facts(comfy: ComfyClient) -> None:
    stats = comfy.system_stats()
    assert "comfyui_version" in stats["system"] and stats["devices"]
    info = comfy.object_info()
    assert "steps" in info["KSampler"]["input"]["required"]
    assert info["SaveImage"]["output_node"] is True
    assert comfy.queue_remaining() == 0
    assert comfy.queue() == {"running": [], "pending": [],
                             "raw": {"queue_running": [], "queue_pending": []}}
    comfy.free(unload_models=True, free_memory=True)


def test_client_id_is_stable_and_connect_idempotent(sim: SimProcess) -> None:
    with ComfyClient(sim.url) as first, ComfyClient(sim.url + "/", client_id="fixed") as second:
        assert len(first.client_id) == 32 and first.client_id != ComfyClient(sim.url).client_id
        assert second.client_id == "fixed" and second.base_url == sim.url
        assert first.events.url.endswith(f"/ws?clientId={first.client_id}")
        first.connect()
        socket_before = first.events._ws
        first.connect()
        assert first.events._ws is socket_before and first.events.connected
    assert not first.events.connected


# -- a successful run ----------------------------------------------------------

def test_queue_follow_download(comfy: ComfyClient) -> None:
    prompt_id = new_id()
    answer = comfy.queue_prompt(graph(steps=3), prompt_id)
    assert answer["prompt_id"] == prompt_id and answer["node_errors"] == {}
    assert isinstance(answer["number"], (int, float))
    events: list[tuple[str, dict[str, Any]]] = []
    entry = comfy.follow(prompt_id, lambda kind, data: events.append((kind, data)), timeout=20)

    kinds = [kind for kind, _ in events]
    assert all(data.get("prompt_id") == prompt_id for _, data in events)
    assert kinds[0] == "execution_start" and "execution_success" in kinds
    assert events[-1][0] == "executing" and events[-1][1]["node"] is None
    executing = [data["node"] for kind, data in events if kind == "executing"][:-1]
    assert sorted(executing) == sorted(GRAPH)
    assert executing.index("5") < executing.index("6") < executing.index("7")
    steps = [data["value"] for kind, data in events if kind == "progress" and data["node"] == "5"]
    assert steps[-1] == 3
    assert any(kind == "executed" and data["node"] == "7" for kind, data in events)

    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"]
    image = entry["outputs"]["7"]["images"][0]
    data = comfy.download(image["filename"], image["subfolder"], image["type"])
    assert isinstance(data, bytes) and data.startswith(PNG_MAGIC)
    sink = io.BytesIO()
    size, sha = comfy.download(image["filename"], image["subfolder"], image["type"], dest=sink)
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert sink.getvalue() == data
    assert comfy.find_prompt(prompt_id) == "done"
    assert comfy.history(prompt_id) == entry


def test_api_prefix(sim: SimProcess) -> None:
    with ComfyClient(sim.url + "/api") as comfy:
        comfy.connect()
        prompt_id = new_id()
        comfy.queue_prompt(graph(), prompt_id)
        entry = comfy.follow(prompt_id, timeout=20)
    assert "7" in entry["outputs"]


def test_follow_after_the_prompt_finished_uses_history(sim: SimProcess,
                                                       comfy: ComfyClient) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(), prompt_id)
    wait_until(lambda: comfy.find_prompt(prompt_id) == "done")
    with ComfyClient(sim.url) as late:  # never connected: it saw none of the messages
        started = time.monotonic()
        entry = late.follow(prompt_id, timeout=20)
    assert time.monotonic() - started < 2
    assert "7" in entry["outputs"]


def test_cached_rerun_returns_the_old_files(comfy: ComfyClient) -> None:
    prompt = graph()
    first, second = new_id(), new_id()
    comfy.queue_prompt(prompt, first)
    old = comfy.follow(first, timeout=20)
    comfy.queue_prompt(prompt, second)
    events: list[str] = []
    new = comfy.follow(second, lambda kind, data: events.append(kind), timeout=20)
    assert new["outputs"]["7"] == old["outputs"]["7"]
    assert "execution_cached" in events


def test_follow_reports_only_its_own_prompt(comfy: ComfyClient) -> None:
    first, second = new_id(), new_id()
    comfy.queue_prompt(graph(), first)
    comfy.queue_prompt(graph(), second)
    seen: list[str] = []
    comfy.follow(first, lambda kind, data: seen.append(data["prompt_id"]), timeout=20)
    comfy.follow(second, lambda kind, data: seen.append(data["prompt_id"]), timeout=20)
    assert set(seen) == {first, second}
    assert seen.index(second) > max(i for i, p in enumerate(seen) if p == first)


def test_poll_is_called_while_waiting(comfy: ComfyClient) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(steps=5), prompt_id, extra_data=slow(0.2))
    calls: list[float] = []
    comfy.follow(prompt_id, poll=lambda: calls.append(time.monotonic()), poll_interval=0.1,
                 timeout=20)
    assert len(calls) >= 5
    assert max(b - a for a, b in zip(calls, calls[1:])) < 0.5


def test_the_first_poll_waits_a_poll_interval(comfy: ComfyClient) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(steps=1), prompt_id)
    calls: list[float] = []
    comfy.follow(prompt_id, poll=lambda: calls.append(time.monotonic()), poll_interval=30, timeout=20)
    assert calls == []  # a short prompt's end is never held up behind a poll


# -- queue operations ----------------------------------------------------------

def test_queue_states_order_and_find_prompt(comfy: ComfyClient) -> None:
    running, later, first = new_id(), new_id(), new_id()
    comfy.queue_prompt(graph(steps=50), running, extra_data=slow(0.1))
    wait_until(lambda: comfy.find_prompt(running) == "running")
    comfy.queue_prompt(graph(), later)
    comfy.queue_prompt(graph(), first, front=True)
    listing = comfy.queue()
    assert listing["running"] == [running]
    assert listing["pending"] == [first, later]
    assert len(listing["raw"]["queue_pending"]) == 2
    assert comfy.queue_remaining() == 3
    assert comfy.find_prompt(later) == "pending"
    assert comfy.find_prompt(new_id()) == "unknown"

    comfy.delete_from_queue([later])
    assert comfy.queue()["pending"] == [first]
    comfy.clear_queue()
    assert comfy.queue()["pending"] == []
    assert comfy.queue()["running"] == [running]  # clearing never touches the running one
    comfy.interrupt()
    with pytest.raises(ExecutionInterrupted):
        comfy.follow(running, timeout=20)
    assert comfy.history(later) is None and comfy.find_prompt(later) == "unknown"


def test_explicit_number_orders_pending(comfy: ComfyClient) -> None:
    blocker, b, a = new_id(), new_id(), new_id()
    comfy.queue_prompt(graph(steps=50), blocker, extra_data=slow(0.1))
    comfy.queue_prompt(graph(), b, number=20)
    answer = comfy.queue_prompt(graph(), a, number=10.5)
    assert answer["number"] == 10.5
    assert comfy.queue()["pending"] == [a, b]


def test_history_all(comfy: ComfyClient) -> None:
    ids = [new_id(), new_id()]
    for prompt_id in ids:
        comfy.queue_prompt(graph(), prompt_id)
        comfy.follow(prompt_id, timeout=20)
    everything = comfy.history_all()
    assert set(ids) <= set(everything)
    assert len(comfy.history_all(max_items=1)) == 1
    assert comfy.history(new_id()) is None


# -- files ---------------------------------------------------------------------

def test_upload_and_download_input(comfy: ComfyClient) -> None:
    name = f"in-{new_id()}.png"
    body = PNG_MAGIC + b"first"
    stored = comfy.upload_image(body, name)
    assert stored == {"name": name, "subfolder": "", "type": "input"}
    assert comfy.download(name, type="input") == body
    renamed = comfy.upload_image(PNG_MAGIC + b"second", name)
    assert renamed["name"] != name and renamed["name"].endswith(" (1).png")
    same = comfy.upload_image(body, name)
    assert same["name"] == name  # identical content is not duplicated
    kept = comfy.upload_image(PNG_MAGIC + b"third", name, overwrite=True)
    assert kept["name"] == name and comfy.download(name, type="input") == PNG_MAGIC + b"third"
    sub = comfy.upload_image(body, name, subfolder="refs")
    assert sub == {"name": name, "subfolder": "refs", "type": "input"}
    assert comfy.download(name, "refs", "input") == body


def test_uploaded_image_feeds_load_image(comfy: ComfyClient) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    name = f"load-{new_id()}.png"
    comfy.upload_image(buffer.getvalue(), name)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "l"}},
    }
    prompt_id = new_id()
    comfy.queue_prompt(prompt, prompt_id)
    entry = comfy.follow(prompt_id, timeout=20)
    image = entry["outputs"]["2"]["images"][0]
    assert comfy.download(image["filename"], image["subfolder"]).startswith(PNG_MAGIC)


def test_download_missing_and_bad_names(comfy: ComfyClient) -> None:
    with pytest.raises(OutputMissing) as info:
        comfy.download(f"{new_id()}.png")
    assert info.value.status_code == 404
    with pytest.raises(ComfyProtocolError) as bad:
        comfy.download("../secret.png")
    assert bad.value.status_code == 400 and not isinstance(bad.value, OutputMissing)
    with pytest.raises(ComfyProtocolError) as traversal:
        comfy.download("x.png", subfolder="../..")
    assert traversal.value.status_code == 403
