"""ComfyClient against the real simulator process: each failure maps to its error."""
from __future__ import annotations

import copy
import time
from typing import Any

import pytest
import requests

from comfyq.comfy import (ComfyClient, ComfyProtocolError, ComfyTimeout, ComfyUnreachable, ExecutionFailed,
                          ExecutionInterrupted, PromptLost, PromptRejected)
from comfyq.comfy.http import decode_json
from comfyq.sim.process import SimProcess, free_port

from tests.integration.conftest import wait_until
from tests.integration.comfy.test_comfy_client import GRAPH, graph, new_id, slow


# -- transport -------------------------------------------------------------------

def test_unreachable_closed_port() -> None:
    with ComfyClient(f"http://127.0.0.1:{free_port()}", retries=1) as comfy:
        comfy.reconnect_attempts = 2
        with pytest.raises(ComfyUnreachable):
            comfy.system_stats()
        with pytest.raises(ComfyUnreachable):
            comfy.queue_prompt(graph(), new_id())
        with pytest.raises(ComfyUnreachable):
            comfy.connect()
        with pytest.raises(ComfyUnreachable):
            comfy.follow(new_id(), timeout=5)


def test_plain_text_500_is_a_protocol_error(comfy: ComfyClient) -> None:
    with pytest.raises(ComfyProtocolError) as info:
        comfy.http.request("POST", "/prompt", data=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert info.value.status_code == 500 and info.value.body is not None
    with pytest.raises(TypeError):  # the client refuses to send what would cause it
        comfy.queue_prompt("a string", new_id())  # type: ignore[arg-type]


def test_non_json_body_is_a_protocol_error(comfy: ComfyClient) -> None:
    response = comfy.http.request("GET", "/view", params={"filename": "x.png"}, ok=(404,))
    with pytest.raises(ComfyProtocolError) as info:
        decode_json(response)
    assert info.value.status_code == 404


def test_frozen_server_times_out(own_sim: SimProcess) -> None:
    requests.post(f"{own_sim.url}/sim/config", json={"freeze_seconds": 3}, timeout=5)
    with ComfyClient(own_sim.url, read_timeout=0.5, retries=0) as comfy:
        started = time.monotonic()
        with pytest.raises(ComfyTimeout) as info:
            comfy.queue_remaining()
        assert info.value.timeout == 0.5
        assert time.monotonic() - started < 2.5


# -- follow() timeouts and loss ------------------------------------------------------

def test_follow_of_a_frozen_server_times_out(own_sim: SimProcess) -> None:
    with ComfyClient(own_sim.url) as comfy:
        comfy.connect()
        comfy.silence_check = 0.2
        prompt_id = new_id()
        comfy.queue_prompt(graph(steps=100), prompt_id, extra_data=slow(0.05))
        own_sim.freeze()  # SIGSTOP: no messages, and HTTP calls hang
        try:
            started = time.monotonic()
            with pytest.raises(ComfyTimeout) as info:
                comfy.follow(prompt_id, timeout=1.0)
            assert 1.0 <= time.monotonic() - started < 1.8
            assert info.value.timeout == 1.0
        finally:
            own_sim.thaw()


def test_follow_timeout_leaves_the_prompt_running(comfy: ComfyClient) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(steps=50), prompt_id, extra_data=slow(0.1))
    started = time.monotonic()
    with pytest.raises(ComfyTimeout) as info:
        comfy.follow(prompt_id, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 2
    assert info.value.timeout == 0.5
    assert comfy.find_prompt(prompt_id) == "running"


def test_prompt_deleted_while_pending_is_lost(comfy: ComfyClient) -> None:
    blocker, victim = new_id(), new_id()
    comfy.queue_prompt(graph(steps=100), blocker, extra_data=slow(0.1))
    comfy.queue_prompt(graph(), victim)
    deleted: list[bool] = []

    def delete_once() -> None:
        if not deleted:
            comfy.delete_from_queue([victim])
            deleted.append(True)

    started = time.monotonic()
    with pytest.raises(PromptLost) as info:
        comfy.follow(victim, poll=delete_once, timeout=10)
    assert info.value.prompt_id == victim
    # The queue's status message gives it away long before the silence check would.
    assert time.monotonic() - started < comfy.silence_check / 2


def test_unknown_prompt_is_lost(sim: SimProcess, comfy: ComfyClient) -> None:
    started = time.monotonic()
    with ComfyClient(sim.url) as fresh:  # a follow that opens the socket itself asks at once
        with pytest.raises(PromptLost):
            fresh.follow(new_id(), timeout=10)
    assert time.monotonic() - started < 2
    comfy.silence_check = 0.3  # a connected follower asks once the prompt has been silent
    with pytest.raises(PromptLost):
        comfy.follow(new_id(), timeout=10)


def test_uncertain_submit_is_not_retried_and_can_be_found(own_sim: SimProcess) -> None:
    with ComfyClient(own_sim.url, read_timeout=0.3) as comfy:
        blocker, prompt_id = new_id(), new_id()
        comfy.queue_prompt(graph(steps=100), blocker, extra_data=slow(0.1))
        own_sim.freeze()  # SIGSTOP: the kernel still takes the request, nobody answers
        started = time.monotonic()
        try:
            with pytest.raises(ComfyTimeout):
                comfy.queue_prompt(graph(), prompt_id)
            assert time.monotonic() - started < 0.9  # one attempt, not several
        finally:
            own_sim.thaw()
        wait_until(lambda: comfy.find_prompt(prompt_id) == "pending")
        raw = comfy.queue()["raw"]["queue_pending"]
        assert [item[1] for item in raw].count(prompt_id) == 1


# -- rejection ----------------------------------------------------------------------

def _edit(path: tuple[str, str], value: Any) -> dict[str, Any]:
    prompt = copy.deepcopy(GRAPH)
    node, name = path
    if value is KeyError:
        del prompt[node]["inputs"][name]
    else:
        prompt[node]["inputs"][name] = value
    return prompt


NODE_CASES = [
    ("required_input_missing", "5", _edit(("5", "steps"), KeyError)),
    ("invalid_input_type", "5", _edit(("5", "steps"), "abc")),
    ("value_bigger_than_max", "4", _edit(("4", "width"), 10 ** 9)),
    ("value_smaller_than_min", "5", _edit(("5", "steps"), 0)),
    ("return_type_mismatch", "6", _edit(("6", "vae"), ["1", 0])),
    ("value_not_in_list", "5", _edit(("5", "sampler_name"), "nope")),
    ("exception_during_inner_validation", "6", _edit(("6", "samples"), ["99", 0])),
]


@pytest.mark.parametrize("error_type, node_id, prompt", NODE_CASES,
                         ids=[case[0] for case in NODE_CASES])
def test_rejected_with_node_errors(comfy: ComfyClient, error_type: str, node_id: str,
                                   prompt: dict[str, Any]) -> None:
    prompt_id = new_id()
    with pytest.raises(PromptRejected) as info:
        comfy.queue_prompt(prompt, prompt_id)
    error = info.value
    assert error.status_code == 400 and error.prompt_id == prompt_id
    assert error.error["type"] == "prompt_outputs_failed_validation"
    assert node_id in error.node_errors
    assert error_type in [e["type"] for e in error.node_errors[node_id]["errors"]]
    assert comfy.find_prompt(prompt_id) == "unknown"


def test_value_not_in_list_names_the_input(comfy: ComfyClient) -> None:
    with pytest.raises(PromptRejected) as info:
        comfy.queue_prompt(_edit(("5", "sampler_name"), "nope"), new_id())
    extra = info.value.node_errors["5"]["errors"][0]["extra_info"]
    assert extra["input_name"] == "sampler_name" and extra["received_value"] == "nope"


def test_load_image_of_a_missing_file_is_rejected(comfy: ComfyClient) -> None:
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": f"{new_id()}.png"}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                          "filename_prefix": "x"}}}
    with pytest.raises(PromptRejected) as info:
        comfy.queue_prompt(prompt, new_id())
    assert info.value.node_errors["1"]["errors"][0]["type"] == "custom_validation_failed"


@pytest.mark.parametrize("prompt, error_type", [
    ({**GRAPH, "8": {"class_type": "NoSuchNode", "inputs": {}}}, "invalid_prompt"),
    ({"1": {"inputs": {}}}, "invalid_prompt"),
    ({key: GRAPH[key] for key in ("1", "2", "3", "4", "5", "6")}, "prompt_no_outputs"),
])
def test_rejected_without_node_errors(comfy: ComfyClient, prompt: dict[str, Any],
                                      error_type: str) -> None:
    with pytest.raises(PromptRejected) as info:
        comfy.queue_prompt(prompt, new_id())
    assert info.value.status_code == 400
    assert info.value.error["type"] == error_type
    assert info.value.node_errors == {}
    assert info.value.message


def _two_branches() -> dict[str, Any]:
    prompt = graph()
    prompt["8"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0],
                                                         "filename_prefix": "bad"}}
    prompt["9"] = {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 0]}}
    return prompt


def test_partially_valid_prompt_is_rejected_and_withdrawn(comfy: ComfyClient) -> None:
    prompt_id = new_id()
    with pytest.raises(PromptRejected) as info:
        comfy.queue_prompt(_two_branches(), prompt_id, extra_data=slow(0.1))
    assert info.value.status_code == 200 and "9" in info.value.node_errors
    wait_until(lambda: comfy.find_prompt(prompt_id) in ("unknown", "done"))
    entry = comfy.history(prompt_id)
    assert entry is None or entry["status"]["status_str"] == "error"


def test_partially_valid_prompt_runs_when_allowed(comfy: ComfyClient) -> None:
    prompt_id = new_id()
    answer = comfy.queue_prompt(_two_branches(), prompt_id, allow_partial=True)
    assert "9" in answer["node_errors"]
    entry = comfy.follow(prompt_id, timeout=20)
    assert "7" in entry["outputs"] and "8" not in entry["outputs"]


# -- execution ----------------------------------------------------------------------

def test_execution_failed_names_the_node(sim: SimProcess, comfy: ComfyClient) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(knobs={"5": {"fail": "sampler exploded"}}), prompt_id)
    events: list[str] = []
    with pytest.raises(ExecutionFailed) as info:
        comfy.follow(prompt_id, lambda kind, data: events.append(kind), timeout=20)
    error = info.value
    assert (error.prompt_id, error.node_id, error.node_type) == (prompt_id, "5", "KSampler")
    assert error.message == "sampler exploded" and error.exception_type
    assert "sampler exploded" in str(error) and "execution_error" in events
    assert events[-1] == "executing"  # read up to the end, so nothing stale is left
    # A late follower learns the same from the history.
    wait_until(lambda: comfy.find_prompt(prompt_id) == "done")
    with ComfyClient(sim.url) as late:
        with pytest.raises(ExecutionFailed) as again:
            late.follow(prompt_id, timeout=10)
    assert (again.value.node_id, again.value.message) == ("5", "sampler exploded")


def test_resubmitting_a_failed_prompt_id_follows_the_new_run(comfy: ComfyClient) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(knobs={"5": {"fail": "first try"}}), prompt_id)
    with pytest.raises(ExecutionFailed):
        comfy.follow(prompt_id, timeout=20)
    comfy.queue_prompt(graph(steps=10), prompt_id, extra_data=slow(0.02))
    entry = comfy.follow(prompt_id, timeout=20)
    assert entry["status"]["status_str"] == "success" and "7" in entry["outputs"]


def test_interrupt_from_poll(comfy: ComfyClient) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(steps=100), prompt_id, extra_data=slow(0.05))
    progress: list[int] = []

    def cancel_after_two_steps() -> None:
        if len(progress) >= 2:
            comfy.interrupt(prompt_id)

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "progress":
            progress.append(data["value"])

    with pytest.raises(ExecutionInterrupted) as info:
        comfy.follow(prompt_id, on_event, poll=cancel_after_two_steps, poll_interval=0.05,
                     timeout=20)
    assert info.value.prompt_id == prompt_id and max(progress) < 100
    assert comfy.history(prompt_id)["status"]["status_str"] == "error"


def test_targeted_interrupt_from_another_client(sim: SimProcess, comfy: ComfyClient) -> None:
    running, pending = new_id(), new_id()
    comfy.queue_prompt(graph(steps=100), running, extra_data=slow(0.05))
    comfy.queue_prompt(graph(), pending)
    wait_until(lambda: comfy.find_prompt(running) == "running")
    with ComfyClient(sim.url) as other:
        other.interrupt(pending)  # not the running one: ignored
        time.sleep(0.3)
        assert other.find_prompt(running) == "running"
        other.interrupt(running)
    with pytest.raises(ExecutionInterrupted):
        comfy.follow(running, timeout=20)
    assert "7" in comfy.follow(pending, timeout=20)["outputs"]  # pending ones still run


def test_hanging_node_ignores_interrupt_until_timeout(sim: SimProcess,
                                                     comfy: ComfyClient) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(knobs={"6": {"hang": True}}), prompt_id)
    try:
        with pytest.raises(ComfyTimeout):
            comfy.follow(prompt_id, poll=lambda: comfy.interrupt(prompt_id), timeout=0.6)
        assert comfy.find_prompt(prompt_id) == "running"
    finally:
        requests.post(f"{sim.url}/sim/config", json={"release_hang": True}, timeout=5)
    with pytest.raises(ExecutionInterrupted) as info:  # the interrupt lands after the node
        comfy.follow(prompt_id, timeout=10)
    assert info.value.node_id == "7"


def test_reconnects_after_websocket_drop(comfy: ComfyClient,
                                         caplog: pytest.LogCaptureFixture) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(steps=6, knobs={"5": {"drop_ws": True}}), prompt_id,
                       extra_data=slow(0.05))
    kinds: list[str] = []
    entry = comfy.follow(prompt_id, lambda kind, data: kinds.append(kind), timeout=20)
    assert entry["status"]["status_str"] == "success" and "7" in entry["outputs"]
    assert comfy.events.connected and "execution_start" in kinds
    assert "lost while following" in caplog.text


def test_drop_then_finish_while_away_uses_history(comfy: ComfyClient,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    prompt_id = new_id()
    comfy.queue_prompt(graph(knobs={"7": {"drop_ws": True}}), prompt_id)
    kinds: list[str] = []
    entry = comfy.follow(prompt_id, lambda kind, data: kinds.append(kind), timeout=20)
    assert "7" in entry["outputs"] and "lost while following" in caplog.text
    assert "execution_success" not in kinds  # it ended while the socket was down


def test_server_death_is_unreachable(own_sim: SimProcess) -> None:
    with ComfyClient(own_sim.url, retries=0) as comfy:
        comfy.reconnect_attempts = 3
        comfy.connect()
        prompt_id = new_id()
        comfy.queue_prompt(graph(knobs={"5": {"die": True}}), prompt_id)
        with pytest.raises(ComfyUnreachable):
            comfy.follow(prompt_id, timeout=30)
        with pytest.raises(ComfyUnreachable):
            comfy.queue_remaining()
