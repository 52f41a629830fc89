"""The simulator speaks ComfyUI's websocket protocol: order, caching, errors, interrupts, routing."""
from __future__ import annotations

import itertools
import os
import statistics
import time
from typing import Any

import requests
import websocket

from comfyq.sim.process import SimProcess
from comfyq.sim.testing import Listener, of_prompt, txt2img, with_node_knobs

SEEDS = itertools.count(1000)


def post(sim: SimProcess, prompt: dict[str, Any], client_id: str | None = None, **body: Any) -> dict[str, Any]:
    if client_id is not None:
        body["client_id"] = client_id
    response = requests.post(f"{sim.url}/prompt", json={"prompt": prompt, **body}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def history(sim: SimProcess, prompt_id: str) -> dict[str, Any]:
    return requests.get(f"{sim.url}/history/{prompt_id}", timeout=5).json()


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


def test_greeting_has_status_with_sid(sim: SimProcess) -> None:
    client = Listener(sim.ws_url, client_id="greeted")
    first = client.recv()
    client.close()
    assert first == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "greeted"}}


def test_feature_flags_first_frame_is_answered(sim: SimProcess) -> None:
    client = Listener(sim.ws_url)
    client.recv()
    client.ws.send('{"type": "feature_flags", "data": {"supports_preview_metadata": false}}')
    answer = client.recv()
    client.close()
    assert answer["type"] == "feature_flags"
    assert answer["data"]["supports_preview_metadata"] is True


def test_success_message_order(sim: SimProcess, listener: Listener) -> None:
    answer = post(sim, txt2img(seed=next(SEEDS), steps=4), listener.client_id)
    assert answer["node_errors"] == {}
    pid = answer["prompt_id"]
    messages = of_prompt(listener.until_done(pid), pid)
    kinds = types(messages)
    assert kinds[:4] == ["status", "status", "execution_start", "execution_cached"]
    assert messages[3]["data"]["nodes"] == []
    assert kinds[-3:] == ["execution_success", "status", "executing"]
    assert messages[-1]["data"] == {"node": None, "prompt_id": pid}
    assert messages[-2]["data"]["status"]["exec_info"]["queue_remaining"] == 0
    # Per node: progress_state(running) -> executing -> progress* -> executed? -> progress_state(finished).
    body, ran = messages[4:-3], []
    while body:
        running, executing = body[0], body[1]
        node = executing["data"]["node"]
        assert running["type"] == "progress_state" and running["data"]["nodes"][node]["state"] == "running"
        assert executing["type"] == "executing" and executing["data"] == {"node": node, "display_node": node,
                                                                          "prompt_id": pid}
        end = next(i for i, m in enumerate(body) if m["type"] == "progress_state" and i > 0)
        middle, finished = body[2:end], body[end]
        assert finished["data"]["nodes"][node]["state"] == "finished"
        assert set(ran) <= set(finished["data"]["nodes"])  # progress_state grows during the run
        if node == "3":
            assert [m["data"]["value"] for m in middle] == [1, 2, 3, 4]
            assert all(m["type"] == "progress" and m["data"]["max"] == 4 and m["data"]["node"] == "3" for m in middle)
        elif node == "9":
            assert types(middle) == ["executed"]
            images = middle[0]["data"]["output"]["images"]
            assert images[0]["type"] == "output" and images[0]["filename"].endswith("_.png")
        else:
            assert middle == []
        ran.append(node)
        body = body[end + 1:]
    assert sorted(ran) == ["3", "4", "5", "6", "7", "8", "9"]
    assert ran.index("3") > ran.index("4") and ran[-1] == "9"


def test_history_shape_and_written_before_executing_null(sim: SimProcess, listener: Listener) -> None:
    prompt = txt2img(seed=next(SEEDS))
    pid = post(sim, prompt, listener.client_id, extra_data={"extra_pnginfo": {"workflow": {}}})["prompt_id"]
    listener.until_done(pid)
    entry = history(sim, pid)[pid]
    number, prompt_id, stored, extra_data, outputs = entry["prompt"]
    assert prompt_id == pid and stored == prompt and outputs == ["9"]
    assert extra_data["client_id"] == listener.client_id and isinstance(number, (int, float))
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [event for event, _ in entry["status"]["messages"]] == [
        "execution_start", "execution_cached", "execution_success"]
    assert all("timestamp" in data for _, data in entry["status"]["messages"])
    assert entry["outputs"]["9"]["images"][0]["type"] == "output"
    assert entry["meta"]["9"]["node_id"] == "9"


def test_identical_rerun_is_served_from_cache(sim: SimProcess, listener: Listener) -> None:
    prompt = txt2img(seed=next(SEEDS), prefix="cached")
    first = post(sim, prompt, listener.client_id)["prompt_id"]
    first_messages = listener.until_done(first)
    first_images = next(m for m in first_messages if m["type"] == "executed")["data"]["output"]["images"]
    output_dir = requests.get(f"{sim.url}/sim/info", timeout=5).json()["output_dir"]
    files_before = sorted(os.listdir(output_dir))

    second = post(sim, prompt, listener.client_id)["prompt_id"]
    messages = of_prompt(listener.until_done(second), second)
    cached = next(m for m in messages if m["type"] == "execution_cached")
    assert sorted(cached["data"]["nodes"]) == ["3", "4", "5", "6", "7", "8", "9"]
    assert [m for m in messages if m["type"] == "executing" and m["data"]["node"] is not None] == []
    executed = [m for m in messages if m["type"] == "executed"]
    assert len(executed) == 1 and executed[0]["data"]["output"]["images"] == first_images
    assert "execution_success" in types(messages)
    assert sorted(os.listdir(output_dir)) == files_before
    assert history(sim, second)[second]["outputs"]["9"]["images"] == first_images


def test_changed_seed_reruns_only_downstream_nodes(sim: SimProcess, listener: Listener) -> None:
    pid = post(sim, txt2img(seed=next(SEEDS), prefix="partial"), listener.client_id)["prompt_id"]
    listener.until_done(pid)
    pid = post(sim, txt2img(seed=next(SEEDS), prefix="partial"), listener.client_id)["prompt_id"]
    messages = listener.until_done(pid)
    cached = next(m for m in messages if m["type"] == "execution_cached")["data"]["nodes"]
    ran = [m["data"]["node"] for m in messages if m["type"] == "executing" and m["data"]["node"]]
    assert sorted(cached) == ["4", "5", "6", "7"]
    assert ran == ["3", "8", "9"]


def test_batch_makes_several_images(sim: SimProcess, listener: Listener) -> None:
    pid = post(sim, txt2img(seed=next(SEEDS), batch_size=2, prefix="batch"), listener.client_id)["prompt_id"]
    listener.until_done(pid)
    images = history(sim, pid)[pid]["outputs"]["9"]["images"]
    names = [i["filename"] for i in images]
    assert len(names) == 2 and names[0] != names[1]
    for name in names:
        png = requests.get(f"{sim.url}/view", params={"filename": name, "type": "output"}, timeout=5)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_runtime_error_messages_and_history(sim: SimProcess, listener: Listener) -> None:
    prompt = with_node_knobs(txt2img(seed=next(SEEDS)), "3", fail="sampler exploded")
    pid = post(sim, prompt, listener.client_id)["prompt_id"]
    messages = of_prompt(listener.until_done(pid), pid)
    kinds = types(messages)
    at = kinds.index("execution_error")
    assert kinds[at - 1] == "executing" and messages[at - 1]["data"]["node"] == "3"
    assert kinds[at + 1:] == ["status", "executing"] and "execution_success" not in kinds
    error = messages[at]["data"]
    assert set(error) == {"prompt_id", "node_id", "node_type", "executed", "exception_message", "exception_type",
                          "traceback", "current_inputs", "current_outputs", "timestamp"}
    assert error["node_id"] == "3" and error["node_type"] == "KSampler"
    assert error["exception_message"].strip() == "sampler exploded"
    assert error["exception_type"] == "RuntimeError"
    # Upstream nodes either ran in this prompt or were served from the cache.
    assert set(error["executed"]) | set(error["current_outputs"]) == {"4", "5", "6", "7"}
    assert error["current_inputs"]["seed"] == [prompt["3"]["inputs"]["seed"]]
    assert isinstance(error["traceback"], list)
    status = history(sim, pid)[pid]["status"]
    assert status["status_str"] == "error" and status["completed"] is False
    assert status["messages"][-1][0] == "execution_error"


def slow_prompt(step_seconds: float = 0.05, steps: int = 40) -> dict[str, Any]:
    return with_node_knobs(txt2img(seed=next(SEEDS), steps=steps), "3", step_seconds=step_seconds)


def test_global_interrupt_stops_sampler_mid_run(sim: SimProcess, listener: Listener) -> None:
    pid = post(sim, slow_prompt(), listener.client_id)["prompt_id"]
    listener.until("progress", prompt_id=pid)
    assert requests.post(f"{sim.url}/interrupt", json={}, timeout=5).status_code == 200
    messages = of_prompt(listener.until_done(pid), pid)
    kinds = types(messages)
    assert kinds[-3:] == ["execution_interrupted", "status", "executing"]
    interrupted = messages[-3]["data"]
    assert interrupted["node_id"] == "3" and interrupted["node_type"] == "KSampler"
    assert set(interrupted) == {"prompt_id", "node_id", "node_type", "executed", "timestamp"}
    assert kinds.count("progress") < 39
    status = history(sim, pid)[pid]["status"]
    assert status["status_str"] == "error" and status["completed"] is False


def test_targeted_interrupt_of_running_prompt(sim: SimProcess, listener: Listener) -> None:
    pid = post(sim, slow_prompt(), listener.client_id)["prompt_id"]
    listener.until("progress", prompt_id=pid)
    requests.post(f"{sim.url}/api/interrupt", json={"prompt_id": pid}, timeout=5)
    assert "execution_interrupted" in types(listener.until_done(pid))


def test_targeted_interrupt_with_other_id_is_ignored(sim: SimProcess, listener: Listener) -> None:
    pid = post(sim, slow_prompt(0.01, 20), listener.client_id)["prompt_id"]
    listener.until("progress", prompt_id=pid)
    requests.post(f"{sim.url}/interrupt", json={"prompt_id": "not-the-running-one"}, timeout=5)
    kinds = types(listener.until_done(pid))
    assert "execution_success" in kinds and "execution_interrupted" not in kinds


def test_interrupt_is_checked_between_nodes(sim: SimProcess, listener: Listener) -> None:
    prompt = with_node_knobs(txt2img(seed=next(SEEDS)), "8", node_seconds=0.3)
    pid = post(sim, prompt, listener.client_id)["prompt_id"]
    listener.until("executing", node="8", prompt_id=pid)
    requests.post(f"{sim.url}/interrupt", timeout=5)
    messages = listener.until_done(pid)
    interrupted = next(m for m in messages if m["type"] == "execution_interrupted")["data"]
    # VAEDecode finishes its (uninterruptible) work; the node about to run is named.
    assert interrupted["node_id"] == "9" and "8" in interrupted["executed"]
    last_executing = [m for m in messages if m["type"] == "executing" and m["data"]["node"]][-1]
    assert last_executing["data"]["node"] == "9"


def test_interrupt_while_idle_does_nothing(sim: SimProcess, listener: Listener) -> None:
    requests.post(f"{sim.url}/interrupt", json={}, timeout=5)
    pid = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)["prompt_id"]
    assert "execution_success" in types(listener.until_done(pid))


def test_pending_prompts_still_run_after_an_interrupt(sim: SimProcess, listener: Listener) -> None:
    slow = post(sim, slow_prompt(), listener.client_id)["prompt_id"]
    after = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)["prompt_id"]
    listener.until("progress", prompt_id=slow)
    requests.post(f"{sim.url}/interrupt", json={}, timeout=5)
    assert "execution_interrupted" in types(listener.until_done(slow))
    assert "execution_success" in types(listener.until_done(after))


def test_other_clients_see_status_only(sim: SimProcess, listener: Listener) -> None:
    bystander = Listener(sim.ws_url)
    bystander.recv()
    pid = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)["prompt_id"]
    listener.until_done(pid)
    seen = bystander.quiet(0.3)
    bystander.close()
    assert seen and set(types(seen)) == {"status"}


def test_prompt_without_client_id_sends_no_execution_messages(sim: SimProcess, listener: Listener) -> None:
    pid = post(sim, txt2img(seed=next(SEEDS)))["prompt_id"]
    deadline = time.monotonic() + 5
    while not history(sim, pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert history(sim, pid)[pid]["status"]["status_str"] == "success"
    assert set(types(listener.quiet(0.2))) <= {"status"}


def test_reconnect_with_same_client_id_replaces_old_socket(sim: SimProcess) -> None:
    old = Listener(sim.ws_url, client_id="same-client")
    old.recv()
    new = Listener(sim.ws_url, client_id="same-client")
    assert new.recv()["data"]["sid"] == "same-client"
    pid = post(sim, txt2img(seed=next(SEEDS)), "same-client")["prompt_id"]
    assert "execution_success" in types(new.until_done(pid))
    stale = old.quiet(0.2)
    old.close()
    new.close()
    assert [m for m in stale if m["type"] != "status"] == []


def test_api_prefix_answers_every_route(sim: SimProcess) -> None:
    client = Listener(sim.ws_url.replace("/ws", "/api/ws"))
    client.recv()
    response = requests.post(f"{sim.url}/api/prompt", json={"prompt": txt2img(seed=next(SEEDS)),
                                                             "client_id": client.client_id}, timeout=5)
    pid = response.json()["prompt_id"]
    client.until_done(pid)
    client.close()
    assert requests.get(f"{sim.url}/api/history/{pid}", timeout=5).json()[pid]["status"]["completed"]
    for path in ("/api/queue", "/api/prompt", "/api/object_info", "/api/system_stats", "/api/history"):
        assert requests.get(sim.url + path, timeout=5).status_code == 200, path


def test_trivial_prompt_round_trip_is_fast(sim: SimProcess, listener: Listener) -> None:
    durations = []
    for _ in range(15):
        started = time.perf_counter()
        pid = post(sim, txt2img(seed=next(SEEDS), steps=1), listener.client_id)["prompt_id"]
        listener.until_done(pid)
        durations.append(time.perf_counter() - started)
    # ComfyUI itself needs 6-12 ms here; leave room for a loaded CI machine.
    assert statistics.median(durations) < 0.05


def test_unknown_prompt_history_is_empty(sim: SimProcess) -> None:
    assert history(sim, "no-such-prompt") == {}


def test_websocket_without_client_id_gets_generated_sid(sim: SimProcess) -> None:
    ws = websocket.create_connection(sim.ws_url, timeout=5)
    greeting = ws.recv()
    ws.close()
    assert '"sid": "' in greeting and '"sid": ""' not in greeting
