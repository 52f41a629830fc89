"""The simulator's queue, history and ``/free`` behave like ComfyUI's."""
from __future__ import annotations

import itertools
from typing import Any, Iterator

import pytest
import requests

from comfyq.sim.process import SimProcess
from comfyq.sim.testing import Listener, txt2img, with_node_knobs

SEEDS = itertools.count(5000)


def post(sim: SimProcess, prompt: dict[str, Any], client_id: str, **body: Any) -> dict[str, Any]:
    response = requests.post(f"{sim.url}/prompt", json={"prompt": prompt, "client_id": client_id, **body}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def queue(sim: SimProcess) -> dict[str, Any]:
    return requests.get(f"{sim.url}/queue", timeout=5).json()


def release(sim: SimProcess) -> None:
    requests.post(f"{sim.url}/sim/config", json={"release_hang": True}, timeout=5)


@pytest.fixture
def blocked(sim: SimProcess, listener: Listener) -> Iterator[str]:
    """Occupy the simulator with a hanging prompt; release it afterwards."""
    pid = post(sim, with_node_knobs(txt2img(seed=next(SEEDS)), "3", hang=True), listener.client_id)["prompt_id"]
    listener.until("executing", node="3", prompt_id=pid)
    try:
        yield pid
    finally:
        release(sim)
        listener.until_done(pid)


def test_queue_lists_running_and_pending_by_number(sim: SimProcess, listener: Listener, blocked: str) -> None:
    later = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)
    first = post(sim, txt2img(seed=next(SEEDS)), listener.client_id, front=True)
    explicit = post(sim, txt2img(seed=next(SEEDS)), listener.client_id, number=-1000.5)
    assert first["number"] == -(later["number"] + 1) and explicit["number"] == -1000.5
    state = queue(sim)
    running = state["queue_running"]
    assert len(running) == 1 and running[0][1] == blocked and len(running[0]) == 5
    number, pid, prompt, extra_data, outputs = running[0]
    assert prompt["3"]["class_type"] == "KSampler" and extra_data["client_id"] == listener.client_id
    assert outputs == ["9"]
    pending = sorted(state["queue_pending"], key=lambda item: item[0])
    assert [item[1] for item in pending] == [explicit["prompt_id"], first["prompt_id"], later["prompt_id"]]
    assert requests.get(f"{sim.url}/prompt", timeout=5).json() == {"exec_info": {"queue_remaining": 4}}
    release(sim)
    order = []
    for _ in range(3):
        message = listener.until("execution_start")
        order.append(message["data"]["prompt_id"])
    assert order == [explicit["prompt_id"], first["prompt_id"], later["prompt_id"]]
    listener.until_done(later["prompt_id"])


def test_delete_and_clear_remove_pending_only(sim: SimProcess, listener: Listener, blocked: str) -> None:
    doomed = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)["prompt_id"]
    kept = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)["prompt_id"]
    cleared = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)["prompt_id"]
    assert requests.post(f"{sim.url}/queue", json={"delete": [doomed, blocked]}, timeout=5).status_code == 200
    state = queue(sim)
    assert [item[1] for item in state["queue_running"]] == [blocked]
    assert sorted(item[1] for item in state["queue_pending"]) == sorted([kept, cleared])
    requests.post(f"{sim.url}/api/queue", json={"clear": True}, timeout=5)
    assert queue(sim)["queue_pending"] == []
    kept = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)["prompt_id"]
    release(sim)
    listener.until_done(blocked)
    listener.until_done(kept)
    history = requests.get(f"{sim.url}/history", timeout=5).json()
    assert blocked in history and kept in history
    assert doomed not in history and cleared not in history


def test_caller_chosen_prompt_id_is_kept_and_reuse_overwrites_history(sim: SimProcess, listener: Listener) -> None:
    answer = post(sim, txt2img(seed=next(SEEDS)), listener.client_id, prompt_id="job-42")
    assert answer["prompt_id"] == "job-42"
    listener.until_done("job-42")
    first = requests.get(f"{sim.url}/history/job-42", timeout=5).json()["job-42"]
    broken = with_node_knobs(txt2img(seed=next(SEEDS)), "8", fail=True)
    post(sim, broken, listener.client_id, prompt_id="job-42")
    listener.until_done("job-42")
    second = requests.get(f"{sim.url}/history/job-42", timeout=5).json()["job-42"]
    assert first["status"]["status_str"] == "success" and second["status"]["status_str"] == "error"
    assert second["prompt"][2]["8"]["_meta"]["sim"] == {"fail": True}


def test_history_max_items_returns_newest(sim: SimProcess, listener: Listener) -> None:
    ids = [post(sim, txt2img(seed=next(SEEDS)), listener.client_id)["prompt_id"] for _ in range(3)]
    listener.until_done(ids[-1])
    newest = requests.get(f"{sim.url}/history", params={"max_items": 2}, timeout=5).json()
    assert list(newest) == ids[-2:]
    assert requests.get(f"{sim.url}/history/{ids[0]}", timeout=5).json()[ids[0]]["status"]["completed"]


def test_history_is_empty_while_running(sim: SimProcess, listener: Listener, blocked: str) -> None:
    assert requests.get(f"{sim.url}/history/{blocked}", timeout=5).json() == {}


def test_free_memory_empties_the_cache(sim: SimProcess, listener: Listener) -> None:
    prompt = txt2img(seed=next(SEEDS))
    listener.until_done(post(sim, prompt, listener.client_id)["prompt_id"])
    assert requests.post(f"{sim.url}/free", json={"free_memory": True}, timeout=5).status_code == 200
    pid = post(sim, prompt, listener.client_id)["prompt_id"]
    messages = listener.until_done(pid)
    cached = next(m for m in messages if m["type"] == "execution_cached")["data"]["nodes"]
    assert cached == []
