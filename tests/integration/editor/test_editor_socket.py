"""The editor over a real `comfyq api` (uvicorn): the websocket's messages for a run, and 30 students at once."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import websocket
from flask import Flask
from sqlalchemy import func, select

from comfyq.db.extensions import db
from comfyq.db.models import Job
from tests.conftest import txt2img
from tests.integration.conftest import api_server

QUICK = {"3": {"step_seconds": 0.05}}


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str], app: Flask, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `comfyq api` process of the test stack."""
    with api_server(stack_env, tmp_path_factory.mktemp("logs") / "api.log") as url:
        yield url


def open_editor(api: str, admin_key: str, name: str) -> requests.Session:
    """Create student ``name`` with credits, mint a session, open its link; return the browser's session."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    made = requests.post(f"{api}/v1/admin/users", headers=admin, timeout=30,
                         json={"name": name, "role": "student", "credits": 100})
    assert made.status_code == 201, made.text
    minted = requests.post(f"{api}/v1/editor-sessions", headers=admin, json={"user": name}, timeout=30)
    assert minted.status_code == 201, minted.text
    browser = requests.Session()
    opened = browser.get(minted.json()["link"], allow_redirects=False, timeout=30)
    assert opened.status_code == 303 and "HttpOnly" in opened.headers["Set-Cookie"]
    return browser


def socket_of(api: str, browser: requests.Session, client_id: str) -> websocket.WebSocket:
    """Open the editor's websocket with the browser's cookie."""
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    return websocket.create_connection(f"{api.replace('http', 'ws', 1)}/comfy/ws?clientId={client_id}",
                                       header=[f"Cookie: {cookie}"], timeout=30)


def messages_until_done(ws: websocket.WebSocket, prompt_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Collect the socket's messages until ``executing`` null for ``prompt_id``."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = json.loads(ws.recv())
        got.append(item)
        if item["type"] == "executing" and item["data"]["node"] is None and item["data"]["prompt_id"] == prompt_id:
            return got
    raise AssertionError(f"the run never ended on the socket: {got}")


def test_one_run_speaks_comfyuis_messages_in_order_to_every_tab(api: str, keys: dict[str, str]) -> None:
    browser = open_editor(api, keys["root"], "ws-ada")
    tabs = [socket_of(api, browser, "tab-a"), socket_of(api, browser, "tab-b")]
    hello = [json.loads(tab.recv()) for tab in tabs]
    assert [h["data"]["sid"] for h in hello] == ["tab-a", "tab-b"]
    assert all(h["type"] == "status" and h["data"]["status"]["exec_info"]["queue_remaining"] == 0 for h in hello)
    tabs[0].send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
    assert json.loads(tabs[0].recv())["type"] == "feature_flags"  # as a newer ComfyUI answers a client's flags
    posted = browser.post(f"{api}/comfy/api/prompt", json={"client_id": "tab-a", "prompt": txt2img(seed=7, sim=QUICK)},
                          timeout=30)
    assert posted.status_code == 200, posted.text
    prompt_id = posted.json()["prompt_id"]
    for tab in tabs:
        got = messages_until_done(tab, prompt_id)
        kinds = [m["type"] for m in got]
        run = [k for k in kinds if k != "status"]
        assert run[:2] == ["execution_start", "execution_cached"]
        assert run[-4:] == ["executed", "progress_state", "execution_success", "executing"]
        last_state = [m["data"] for m in got if m["type"] == "progress_state"][-1]
        assert last_state["prompt_id"] == prompt_id and last_state["nodes"]
        assert {e["state"] for e in last_state["nodes"].values()} == {"finished"}
        assert run.index("progress_state") < run.index("executing")  # the node is outlined as it starts
        assert "progress" in run and run.index("executing") < run.index("progress")
        steps = [m["data"] for m in got if m["type"] == "progress"]
        assert all(s["node"] == "3" and s["prompt_id"] == prompt_id and s["max"] == 4 for s in steps)
        assert [s["value"] for s in steps] == sorted(s["value"] for s in steps)
        places = [m["data"]["status"]["exec_info"]["queue_remaining"] for m in got if m["type"] == "status"]
        assert places and places[0] >= 1 and places[-1] == 0  # waiting or running, then nothing left
        (executed,) = [m["data"] for m in got if m["type"] == "executed"]
        assert executed["node"] == "9" and executed["prompt_id"] == prompt_id
        (image,) = executed["output"]["images"]
        viewed = browser.get(f"{api}/comfy/api/view", params=image, timeout=30)
        assert viewed.status_code == 200 and viewed.content[:4] == b"\x89PNG"
        tab.close()


def test_a_socket_without_a_session_is_refused(api: str) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{api.replace('http', 'ws', 1)}/comfy/ws?clientId=x", timeout=30)
    assert refused.value.status_code == 401 and b"editor session" in refused.value.resp_body
    page = requests.get(f"{api}/comfy/", timeout=30)
    assert page.status_code == 401 and "text/html" in page.headers["Content-Type"]
    api_call = requests.get(f"{api}/comfy/api/queue", timeout=30)
    assert api_call.status_code == 401 and api_call.json()["code"] == 401


def test_thirty_editors_submitting_at_once_each_get_a_prompt_and_the_cap_holds(
        api: str, app: Flask, keys: dict[str, str], tmp_path: Path) -> None:
    browsers = [open_editor(api, keys["root"], f"class-{n:02d}") for n in range(30)]
    peak, stop, answers = [0], threading.Event(), [None] * 30

    def watch() -> None:
        with app.app_context():
            while not stop.is_set():
                running = db.session.scalar(select(func.count()).select_from(Job).where(Job.status == "running"))
                peak[0] = max(peak[0], running or 0)
                db.session.rollback()
                time.sleep(0.01)

    def press_run(n: int) -> None:
        answers[n] = browsers[n].post(f"{api}/comfy/api/prompt", timeout=60,
                                      json={"client_id": f"c{n}", "prompt": txt2img(seed=100 + n, sim=QUICK)})

    last = socket_of(api, browsers[-1], "last")  # the last student watches their place move
    assert json.loads(last.recv())["type"] == "status"
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        pressing = [threading.Thread(target=press_run, args=(n,)) for n in range(30)]
        for thread in pressing:
            thread.start()
        for thread in pressing:
            thread.join(90)
        assert all(a is not None and a.status_code == 200 for a in answers), [a.text for a in answers if a]
        ids = [a.json()["prompt_id"] for a in answers]
        assert len(set(ids)) == 30
        deadline = time.monotonic() + 120
        for browser, prompt_id in zip(browsers, ids):
            while not (entry := browser.get(f"{api}/comfy/api/history/{prompt_id}", timeout=30).json()):
                assert time.monotonic() < deadline, f"{prompt_id} never finished"
                time.sleep(0.1)
            assert entry[prompt_id]["status"]["status_str"] == "success"
        seen = messages_until_done(last, ids[-1], timeout=30)
        places = [m["data"]["status"]["exec_info"]["queue_remaining"] for m in seen if m["type"] == "status"]
        top = places.index(max(places))
        assert max(places) >= 3 and places[-1] == 0  # others' jobs were ahead; then none
        moved = places[top:]
        rises = sum(later > earlier for earlier, later in zip(moved, moved[1:]))
        # It moved down step by step; a pending job's place is fair share's estimate, so it may tick up now and then.
        assert len(set(moved)) >= 3 and rises <= len(moved) // 3, places
        last.close()
    finally:
        stop.set()
        watcher.join()
    assert 1 <= peak[0] <= 2  # COMFYQ_MAX_ADMITTED=2 on the test stack: never more than 2 at once
