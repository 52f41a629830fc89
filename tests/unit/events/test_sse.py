"""Reading and writing Server-Sent Events, and what a Last-Event-ID header may say."""
from __future__ import annotations

import json

from comfyq.client.sse import Event, parse
from comfyq.events.sse import kind_of
from comfyq.events.streams import Opening, last_event_id, render, render_opening


def test_events_are_parsed_as_the_spec_says() -> None:
    text = ("retry: 3000\n\n: keep-alive\n\nid: 17-0\nevent: progress\ndata: {\"a\":\n"
            "data: 1}\n\nevent: queued\r\ndata:{\"position\": 2}\r\n\r\nid: x\nevent: started\n\n")
    assert list(parse(text.split("\n"))) == [Event("17-0", "progress", {"a": 1}),
                                             Event(None, "queued", {"position": 2})]


def test_rendered_events_read_back_the_same() -> None:
    body = json.dumps({"type": "succeeded", "job_id": "j", "outputs": []})
    opening = Opening("log", "4-0", "j", [("4-0", body), (None, json.dumps({"type": "queued", "position": 1}))])
    text = render_opening(opening).decode()
    assert text.startswith("retry: 3000\n\n")
    assert list(parse(text.split("\n"))) == [Event("4-0", "succeeded", json.loads(body)),
                                             Event(None, "queued", {"type": "queued", "position": 1})]
    assert render(None, body).startswith(b"event: succeeded\n")


def test_only_a_log_id_resumes() -> None:
    assert last_event_id("1795414912959-0") == "1795414912959-0" and last_event_id(" 3-1 ") == "3-1"
    for raw in (None, "", "-1", "12", "1.5-0", "abc", "9" * 30 + "-0", "\u00b2-0", "1-\u0663"):
        assert last_event_id(raw) is None


def test_the_type_is_read_from_the_front_or_else_parsed() -> None:
    assert kind_of('{"type":"progress","value":3}') == "progress"
    assert kind_of('{"job_id":"j","type":"queued"}') == "queued"
    assert kind_of('{"job_id":"j"}') == "message"
