"""comfyq's job events become ComfyUI's websocket messages, in ComfyUI's order."""
from __future__ import annotations

from typing import Any

from comfyq.editor.translate import Translator, status


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    """Return the message types."""
    return [m["type"] for m in messages]


def test_a_successful_run_in_comfyuis_order() -> None:
    t = Translator()
    events = [{"type": "queued", "status": "pending", "position": 3}, {"type": "queued", "status": "queued"},
              {"type": "started", "instance": "gpu0"},
              {"type": "progress", "node": "4", "value": 0, "max": 0},
              {"type": "progress", "node": "3", "value": 0, "max": 0},
              {"type": "progress", "node": "3", "value": 1, "max": 2},
              {"type": "progress", "node": "3", "value": 2, "max": 2},
              {"type": "output", "node": "9", "files": ["x.png"]},
              {"type": "succeeded", "outputs": [{"name": "a.png", "node_id": "9", "expired": False},
                                                {"name": "b.png", "node_id": "9", "expired": False},
                                                {"name": "old.png", "node_id": "10", "expired": True}]}]
    told = [m for event in events for m in t.messages({**event, "job_id": "P"})]
    assert kinds(told) == ["execution_start", "execution_cached", "progress_state", "executing", "progress_state",
                           "executing", "progress", "progress_state", "progress", "progress_state",
                           "executed", "progress_state", "execution_success", "executing"]
    assert told[3]["data"] == {"node": "4", "display_node": "4", "prompt_id": "P"}
    assert told[6]["data"] == {"value": 1, "max": 2, "prompt_id": "P", "node": "3"}
    assert told[10]["data"]["output"] == {"images": [{"filename": "a.png", "subfolder": "P", "type": "output"},
                                                     {"filename": "b.png", "subfolder": "P", "type": "output"}]}
    assert told[-1]["data"] == {"node": None, "prompt_id": "P"}
    assert isinstance(told[0]["data"]["timestamp"], int)


def test_progress_state_outlines_the_running_node_and_ends_with_every_node_finished() -> None:
    t = Translator()
    events = [{"type": "started"}, {"type": "progress", "node": "4", "value": 0, "max": 0},
              {"type": "progress", "node": "3", "value": 1, "max": 2},
              {"type": "succeeded", "outputs": []}]
    states = [m["data"] for event in events for m in t.messages({**event, "job_id": "P"})
              if m["type"] == "progress_state"]
    assert all(state["prompt_id"] == "P" for state in states)
    assert states[0]["nodes"] == {"4": {"value": 0, "max": 1, "state": "running", "node_id": "4", "prompt_id": "P",
                                        "display_node_id": "4", "parent_node_id": None, "real_node_id": "4"}}
    assert {n: (e["state"], e["value"], e["max"]) for n, e in states[2]["nodes"].items()} == \
        {"4": ("finished", 1, 1), "3": ("running", 1, 2)}
    assert {n: e["state"] for n, e in states[-1]["nodes"].items()} == {"4": "finished", "3": "finished"}
    assert states[-1]["nodes"]["3"]["value"] == 2
    assert t.nodes == {} and t.running == {}  # forgotten once the prompt is over


def test_a_failure_and_a_time_out_are_execution_errors_a_student_can_read() -> None:
    t = Translator()
    t.messages({"type": "started", "job_id": "P"})
    t.messages({"type": "progress", "node": "8", "max": 0, "job_id": "P"})
    failed = t.messages({"type": "failed", "job_id": "P", "error": {
        "type": "execution_failed", "node_id": "8", "node_type": "VAEDecode", "exception_type": "RuntimeError",
        "message": "node 8 (VAEDecode) failed: out of memory"}})
    assert kinds(failed) == ["progress_state", "execution_error", "executing"]
    assert failed[0]["data"]["nodes"]["8"]["state"] == "error"
    assert failed[1]["data"]["node_id"] == "8" and failed[1]["data"]["exception_type"] == "RuntimeError"
    assert "out of memory" in failed[1]["data"]["exception_message"]
    timed = Translator().messages({"type": "timed_out", "job_id": "Q", "error": {}})
    assert kinds(timed) == ["execution_error", "executing"] and "time limit" in timed[0]["data"]["exception_message"]


def test_a_cancel_interrupts_a_started_prompt_and_silently_drops_a_waiting_one() -> None:
    t = Translator()
    assert t.messages({"type": "cancelled", "job_id": "W", "error": {}}) == []
    t.messages({"type": "started", "job_id": "R"})
    t.messages({"type": "progress", "node": "3", "max": 4, "value": 1, "job_id": "R"})
    told = t.messages({"type": "cancelled", "job_id": "R", "error": {}})
    assert kinds(told) == ["execution_interrupted", "executing"] and told[0]["data"]["node_id"] == "3"


def test_status_carries_the_place_and_the_sid_on_connect() -> None:
    assert status(4, "tab") == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 4}},
                                                           "sid": "tab"}}
    assert "sid" not in status(0)["data"]
