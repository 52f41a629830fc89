"""Pure pieces of comfyq.comfy: the error tree, frame decoding, payload decoding, retries."""
from __future__ import annotations

import json
import pickle

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError

from comfyq.comfy import (ComfyConnectFailed, ComfyError, ComfyProtocolError, ComfyTimeout, ComfyUnreachable,
                          ExecutionFailed, ExecutionInterrupted, OutputMissing, PromptLost, PromptRejected)
from comfyq.comfy import payloads
from comfyq.comfy.websocket import Event, decode_frame, websocket_url
from comfyq.comfy.http import GetOnlyRetry, HttpTransport, build_session, translated_errors

ERRORS = [
    ComfyError("boom", "http://h:1/x"),
    ComfyUnreachable("refused", "http://h:1/prompt"),
    ComfyConnectFailed("cannot connect", "http://h:1/prompt"),
    ComfyTimeout("slow", "http://h:1/history/p", 2.5),
    ComfyProtocolError("bad body", "http://h:1/queue", 500, "Internal Server Error"),
    OutputMissing("no output file a.png", "http://h:1/view", 404),
    PromptRejected("Prompt outputs failed validation", "http://h:1/prompt",
                   {"type": "prompt_outputs_failed_validation", "message": "m"},
                   {"5": {"errors": [{"type": "value_not_in_list"}], "class_type": "KSampler"}},
                   400, "p1"),
    PromptLost("gone", "http://h:1", "p2"),
    ExecutionFailed("division by zero", "http://h:1", "p3", "5", "KSampler",
                    "ZeroDivisionError", ["Traceback...", "line 1"]),
    ExecutionInterrupted("interrupted", "http://h:1", "p4", "6", "VAEDecode"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_round_trip(error: ComfyError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert clone.args == error.args
    assert vars(clone) == vars(error)
    assert str(clone) == str(error)


def test_error_tree_shape() -> None:
    for cls in (ComfyUnreachable, ComfyTimeout, ComfyProtocolError, PromptRejected,
                PromptLost, ExecutionFailed, ExecutionInterrupted):
        assert cls.__bases__ == (ComfyError,)
    assert OutputMissing.__bases__ == (ComfyProtocolError,)
    assert ComfyConnectFailed.__bases__ == (ComfyUnreachable,)
    assert issubclass(ComfyError, Exception)


def test_error_context_attributes() -> None:
    failed = next(e for e in ERRORS if isinstance(e, ExecutionFailed))
    assert (failed.prompt_id, failed.node_id, failed.node_type) == ("p3", "5", "KSampler")
    assert failed.message == "division by zero"
    assert failed.exception_type == "ZeroDivisionError"
    assert "node 5 (KSampler)" in str(failed) and "division by zero" in str(failed)
    rejected = next(e for e in ERRORS if isinstance(e, PromptRejected))
    assert isinstance(rejected, PromptRejected)
    assert rejected.status_code == 400 and "5" in rejected.node_errors
    assert "prompt_outputs_failed_validation" in str(rejected)
    assert OutputMissing().status_code == 404


def test_decode_frame_json_message() -> None:
    frame = json.dumps({"type": "progress", "data": {"value": 2, "max": 4, "prompt_id": "p"}})
    event = decode_frame(frame)
    assert event == Event("progress", {"value": 2, "max": 4, "prompt_id": "p"})
    assert event.prompt_id == "p"


@pytest.mark.parametrize("frame", [b"\x00\x00\x00\x01\x89PNG", "", "not json", "[1, 2]",
                                   '{"data": {}}', '{"type": 3}'])
def test_decode_frame_ignores_binary_and_junk(frame: str | bytes) -> None:
    assert decode_frame(frame) is None


def test_decode_frame_without_prompt_id() -> None:
    event = decode_frame('{"type": "status", "data": {"status": {}, "sid": "x"}}')
    assert event is not None and event.type == "status" and event.prompt_id is None
    assert decode_frame('{"type": "crystools.monitor", "data": null}') == Event(
        "crystools.monitor", {})


def test_websocket_url() -> None:
    assert websocket_url("http://h:8188/", "abc") == "ws://h:8188/ws?clientId=abc"
    assert websocket_url("https://h/comfy", "a b") == "wss://h/comfy/ws?clientId=a%20b"


def test_queue_listing_sorts_pending_by_number() -> None:
    raw = {"queue_running": [[0, "r", {}, {}, []]],
           "queue_pending": [[5, "e", {}, {}, []], [-1, "front", {}, {}, []],
                             [2.5, "c", {}, {}, []]]}
    listing = payloads.queue_listing(raw)
    assert listing == {"running": ["r"], "pending": ["front", "c", "e"], "raw": raw}


def test_queue_listing_rejects_bad_shape() -> None:
    with pytest.raises(ComfyProtocolError):
        payloads.queue_listing({"queue_running": []})
    with pytest.raises(ComfyProtocolError):
        payloads.queue_listing({"queue_running": [], "queue_pending": [["x"]]})


def test_rejection_keeps_error_and_node_errors() -> None:
    body = {"error": {"type": "prompt_outputs_failed_validation",
                      "message": "Prompt outputs failed validation", "details": "",
                      "extra_info": {}},
            "node_errors": {"4": {"errors": [{"type": "value_bigger_than_max"}],
                                  "dependent_outputs": ["7"], "class_type": "EmptyLatentImage"}}}
    error = payloads.rejection(body, 400, "http://h/prompt", "p")
    assert error.error["type"] == "prompt_outputs_failed_validation"
    assert error.node_errors == body["node_errors"]
    assert error.status_code == 400 and error.prompt_id == "p"
    assert error.message == "Prompt outputs failed validation"


def test_rejection_of_string_error_and_partial_200() -> None:
    old = payloads.rejection({"error": "no prompt", "node_errors": []}, 400, "u", "p")
    assert old.error == {"type": "no_prompt", "message": "no prompt"}
    assert old.node_errors == {}
    partial = payloads.rejection({"prompt_id": "p", "node_errors": {"9": {}}}, 200, "u", "p")
    assert partial.status_code == 200 and list(partial.node_errors) == ["9"]


def test_outcome_success_returns_entry() -> None:
    entry = {"outputs": {}, "status": {"status_str": "success", "completed": True,
                                       "messages": []}}
    assert payloads.outcome("p", entry) is entry


def test_outcome_error_raises_execution_failed() -> None:
    entry = {"status": {"status_str": "error", "completed": False, "messages": [
        ["execution_start", {"prompt_id": "p"}],
        ["execution_error", {"prompt_id": "p", "node_id": "5", "node_type": "KSampler",
                             "exception_message": "CUDA out of memory\n",
                             "exception_type": "torch.OutOfMemoryError",
                             "traceback": ["tb"]}]]}}
    with pytest.raises(ExecutionFailed) as info:
        payloads.outcome("p", entry, "http://h")
    assert (info.value.node_id, info.value.node_type) == ("5", "KSampler")
    assert info.value.message == "CUDA out of memory"
    assert info.value.exception_type == "torch.OutOfMemoryError"
    assert info.value.traceback == ["tb"]


def test_outcome_interrupted_raises_execution_interrupted() -> None:
    entry = {"status": {"status_str": "error", "completed": False, "messages": [
        ["execution_interrupted", {"prompt_id": "p", "node_id": 6, "node_type": "VAEDecode"}]]}}
    with pytest.raises(ExecutionInterrupted) as info:
        payloads.outcome("p", entry)
    assert info.value.node_id == "6" and info.value.node_type == "VAEDecode"


def test_outcome_error_without_message_still_fails() -> None:
    with pytest.raises(ExecutionFailed):
        payloads.outcome("p", {"status": {"status_str": "error", "messages": []}})


def test_retry_never_repeats_a_post() -> None:
    retry = GetOnlyRetry(total=3, connect=3, read=False, allowed_methods=frozenset({"GET"}))
    refused = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    again = retry.increment("GET", "/queue", error=refused)
    assert again.total == 2 and isinstance(again, GetOnlyRetry)
    with pytest.raises(MaxRetryError):
        retry.increment("POST", "/prompt", error=refused)


def test_session_adapter_retries_gets_only() -> None:
    session = build_session(2)
    retry = session.get_adapter("http://h/").max_retries
    assert isinstance(retry, GetOnlyRetry)
    assert retry.allowed_methods == frozenset({"GET"})
    assert set(retry.status_forcelist) == {502, 503, 504}
    assert retry.connect == 2 and retry.read is False


@pytest.mark.parametrize("raised, expected", [
    (requests.exceptions.ConnectTimeout("connect"), ComfyConnectFailed),
    (requests.exceptions.ReadTimeout("read"), ComfyTimeout),
    (requests.exceptions.ConnectionError("reset"), ComfyUnreachable),
    (requests.exceptions.ChunkedEncodingError("cut"), ComfyUnreachable),
    (requests.exceptions.InvalidURL("bad"), ComfyError),
])
def test_translated_errors(raised: Exception, expected: type[ComfyError]) -> None:
    with pytest.raises(expected) as info:
        with translated_errors("http://h/x", (1.0, 2.0)):
            raise raised
    assert type(info.value) is expected
    assert info.value.url == "http://h/x" and info.value.__cause__ is raised
    if expected is ComfyTimeout:
        assert info.value.timeout == 2.0


def test_stalled_stream_is_a_timeout() -> None:
    stalled = requests.exceptions.ConnectionError(ReadTimeoutError(None, "/view", "stalled"))
    with pytest.raises(ComfyTimeout):
        with translated_errors("http://h/view", (1.0, 2.0)):
            raise stalled


def test_capped_read_timeout_is_restored() -> None:
    transport = HttpTransport("http://h:1/", 3.05, 30.0, 0)
    with transport.capped(0.5):
        assert transport.timeout == (3.05, 0.5)
    with transport.capped(None):
        assert transport.timeout == (3.05, 30.0)
    assert transport.timeout == (3.05, 30.0) and transport.url("/x") == "http://h:1/x"
    transport.close()


def test_refused_connection_is_connect_failed() -> None:
    import socket

    from comfyq.comfy import ComfyClient, ComfyConnectFailed, ComfyUnreachable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens there
    with ComfyClient(f"http://127.0.0.1:{port}", retries=0) as client:
        try:
            client.queue_prompt({"1": {"class_type": "SaveImage", "inputs": {}}}, "p1")
        except ComfyConnectFailed as exc:
            assert isinstance(exc, ComfyUnreachable)
        else:
            raise AssertionError("queue_prompt to a closed port did not fail")
