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
    assert kinds(told) == ["execution_start", "execution_cached", "executing", "executing", "progress", "progress",
                           "executed", "execution_success", "executing"]
    assert told[2]["data"] == {"node": "4", "display_node": "4", "prompt_id": "P"}
    assert told[4]["data"] == {"value": 1, "max": 2, "prompt_id": "P", "node": "3"}
    assert told[6]["data"]["output"] == {"images": [{"filename": "a.png", "subfolder": "P", "type": "output"},
                                                    {"filename": "b.png", "subfolder": "P", "type": "output"}]}
    assert told[-1]["data"] == {"node": None, "prompt_id": "P"}
    assert isinstance(told[0]["data"]["timestamp"], int)


def test_a_failure_and_a_time_out_are_execution_errors_a_student_can_read() -> None:
    t = Translator()
    t.messages({"type": "started", "job_id": "P"})
    t.messages({"type": "progress", "node": "8", "max": 0, "job_id": "P"})
    failed = t.messages({"type": "failed", "job_id": "P", "error": {
        "type": "execution_failed", "node_id": "8", "node_type": "VAEDecode", "exception_type": "RuntimeError",
        "message": "node 8 (VAEDecode) failed: out of memory"}})
    assert kinds(failed) == ["execution_error", "executing"]
    assert failed[0]["data"]["node_id"] == "8" and failed[0]["data"]["exception_type"] == "RuntimeError"
    assert "out of memory" in failed[0]["data"]["exception_message"]
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
