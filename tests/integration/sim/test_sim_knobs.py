"""Behaviour knobs: per node (_meta.sim), per prompt (extra_data.sim), per instance (/sim/config, CLI)."""
from __future__ import annotations

import itertools
import socket
import threading
import time
from typing import Any

import pytest
import requests
import websocket

from comfyq.sim.process import SimProcess, free_port
from comfyq.sim.testing import Listener, txt2img, with_node_knobs

SEEDS = itertools.count(9000)


def post(sim: SimProcess, prompt: dict[str, Any], client_id: str | None, **body: Any) -> str:
    response = requests.post(f"{sim.url}/prompt", json={"prompt": prompt, "client_id": client_id, **body}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["prompt_id"]


def configure(sim: SimProcess, **knobs: Any) -> requests.Response:
    return requests.post(f"{sim.url}/sim/config", json=knobs, timeout=5)


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


def error_of(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m["data"] for m in messages if m["type"] == "execution_error")


def test_prompt_level_fail_at_with_message_and_type(sim: SimProcess, listener: Listener) -> None:
    sim_knobs = {"fail_at": "8", "fail_message": "CUDA out of memory", "fail_type": "torch.OutOfMemoryError"}
    pid = post(sim, txt2img(seed=next(SEEDS)), listener.client_id, extra_data={"sim": sim_knobs})
    error = error_of(listener.until_done(pid))
    assert error["node_id"] == "8" and error["node_type"] == "VAEDecode"
    assert error["exception_message"] == "CUDA out of memory\n"
    assert error["exception_type"] == "torch.OutOfMemoryError"


def test_instance_fail_at_by_class_type_then_cleared(sim: SimProcess, listener: Listener) -> None:
    assert configure(sim, fail_at="KSampler").json()["fail_at"] == "KSampler"
    try:
        pid = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)
        error = error_of(listener.until_done(pid))
        assert error["node_type"] == "KSampler" and "Simulated failure" in error["exception_message"]
    finally:
        configure(sim, fail_at=None)
    assert requests.get(f"{sim.url}/sim/config", timeout=5).json()["fail_at"] is None
    pid = post(sim, txt2img(seed=next(SEEDS)), listener.client_id)
    assert "execution_success" in kinds(listener.until_done(pid))


def test_unknown_knob_is_refused(sim: SimProcess) -> None:
    response = configure(sim, warp_factor=9)
    assert response.status_code == 400 and "warp_factor" in response.json()["error"]


def test_step_seconds_paces_progress(sim: SimProcess, listener: Listener) -> None:
    prompt = txt2img(seed=next(SEEDS), steps=5)
    started = time.monotonic()
    pid = post(sim, prompt, listener.client_id, extra_data={"sim": {"step_seconds": 0.06}})
    listener.until_done(pid)
    assert time.monotonic() - started >= 5 * 0.06


def test_node_seconds_on_one_node(sim: SimProcess, listener: Listener) -> None:
    started = time.monotonic()
    pid = post(sim, with_node_knobs(txt2img(seed=next(SEEDS)), "8", node_seconds=0.2), listener.client_id)
    listener.until_done(pid)
    assert time.monotonic() - started >= 0.2


def test_hang_ignores_interrupt_until_released(sim: SimProcess, listener: Listener) -> None:
    pid = post(sim, with_node_knobs(txt2img(seed=next(SEEDS)), "8", hang=True), listener.client_id)
    listener.until("executing", node="8", prompt_id=pid)
    requests.post(f"{sim.url}/interrupt", json={"prompt_id": pid}, timeout=5)
    assert listener.quiet(0.3) == []
    configure(sim, release_hang=True)
    messages = listener.until_done(pid)
    interrupted = next(m for m in messages if m["type"] == "execution_interrupted")["data"]
    # The hung node completes once released; the interrupt lands before the next node.
    assert interrupted["node_id"] == "9" and "8" in interrupted["executed"]


def test_drop_ws_closes_socket_mid_run_and_history_completes(sim: SimProcess) -> None:
    client = Listener(sim.ws_url)
    client.recv()
    pid = post(sim, with_node_knobs(txt2img(seed=next(SEEDS)), "8", drop_ws=True, node_seconds=0.2),
               client.client_id)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        while True:
            client.recv(5)
    got = [(m["type"], (m.get("data") or {}).get("node")) for m in client.messages]
    assert ("executing", "3") in got and ("executing", "8") not in got
    assert "execution_success" not in [kind for kind, _ in got]
    again = Listener(sim.ws_url, client_id=client.client_id)
    again.recv()
    deadline = time.monotonic() + 5
    entry: dict[str, Any] = {}
    while not entry and time.monotonic() < deadline:
        entry = requests.get(f"{sim.url}/history/{pid}", timeout=5).json()
        time.sleep(0.02)
    again.close()
    assert entry[pid]["status"]["status_str"] == "success" and entry[pid]["outputs"]["9"]["images"]


def test_previews_and_per_step_progress_state(sim: SimProcess, listener: Listener) -> None:
    knobs = {"previews": True, "progress_state_per_step": True}
    pid = post(sim, txt2img(seed=next(SEEDS), steps=3), listener.client_id, extra_data={"sim": knobs})
    messages = listener.until_done(pid)
    assert len(listener.binary) == 3 and listener.binary[0][:8] == b"\x00\x00\x00\x01\x00\x00\x00\x01"
    sequence = kinds(messages)
    first_progress = sequence.index("progress")
    assert sequence[first_progress - 1] == "progress_state"


def test_freeze_holds_requests_for_freeze_seconds(sim: SimProcess) -> None:
    assert configure(sim, freeze=True, freeze_seconds=0.4).status_code == 200
    assert requests.get(f"{sim.url}/sim/info", timeout=5).json()["frozen"] is True
    started = time.monotonic()
    assert requests.get(f"{sim.url}/prompt", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_freeze_is_lifted_by_control_route(sim: SimProcess) -> None:
    configure(sim, freeze=True)
    with pytest.raises(requests.Timeout):
        requests.get(f"{sim.url}/queue", timeout=0.3)
    configure(sim, freeze=False)
    assert requests.get(f"{sim.url}/queue", timeout=5).status_code == 200


def test_die_exits_the_process_and_closes_sockets() -> None:
    with SimProcess() as doomed:
        client = Listener(doomed.ws_url)
        client.recv()
        post(doomed, with_node_knobs(txt2img(), "3", die=True), client.client_id)
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                client.recv(5)
        assert doomed.wait(5) == 3
        assert any(m["type"] == "executing" and m["data"]["node"] == "3" for m in client.messages)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{doomed.url}/queue", timeout=2)
        doomed.restart()
        assert requests.get(f"{doomed.url}/history", timeout=5).json() == {}


def test_start_delay_keeps_port_closed_then_cli_flags_apply() -> None:
    process = SimProcess(free_port(), knobs={"start_delay": 0.6},
                         extra_args=["--step-seconds", "0.01", "--fail-at", "VAEDecode"])
    starter = threading.Thread(target=process.start)
    started = time.monotonic()
    starter.start()
    try:
        time.sleep(0.3)
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", process.port)) != 0
        starter.join(10)
        assert time.monotonic() - started >= 0.6
        config = requests.get(f"{process.url}/sim/config", timeout=5).json()
        assert config["step_seconds"] == 0.01 and config["fail_at"] == ["VAEDecode"]
        assert config["start_delay"] == 0.6
    finally:
        process.stop()
        process.cleanup()
