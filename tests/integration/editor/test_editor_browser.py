"""Acceptance of issue 16: two students in ComfyUI's stock editor, in headless Chromium, through comfyq's queue.

A real ``comfyq up`` (API, workers, Redis, two simulators) with a global cap of one running job. An admin
mints an editor link for each student; each student's own Chromium opens it, loads a small text-to-image
graph and presses the editor's Run button. Student A sees the queue counter, the KSampler running with its
progress, and the picture on the SaveImage node; student B, who pressed Run while A's job ran, sees a place
in the queue before B's job starts, then B's own picture. Screenshots go to the test's tmp_path.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

pytest.importorskip("comfyq.editor", reason="comfyq.editor (the /comfy/ editor surface of issue 16) is not here")

from comfyq.sim.testing import txt2img  # noqa: E402 - after the skip
from tests.browser import Browser, browsers  # noqa: E402,F401 - browsers is a fixture
from tests.integration.conftest import admin_key_of, comfyq_up  # noqa: E402
from tests.integration.editor.stock_editor import StockEditor  # noqa: E402

STEPS = 16
STEP_SECONDS = 0.4  # a KSampler of about 6 s: long enough to watch, and for B to wait behind A
SAVE = "9"  # the SaveImage node of txt2img()
SAMPLER = "3"  # the KSampler
STUDENTS = ("student-a", "student-b")


@contextlib.contextmanager
def told_on_failure(lines: list[str]) -> Iterator[None]:
    """Print the end of `comfyq up`'s output when the block fails, so the server's side shows too."""
    try:
        yield
    except BaseException:
        print("".join(lines[-150:]))
        raise


def mint_link(api: str, key: str, student: str) -> str:
    """Create ``student`` (a novice student with credits) and return a fresh editor link for them."""
    headers = {"Authorization": f"Bearer {key}"}
    made = requests.post(f"{api}/v1/admin/users", headers=headers, timeout=30,
                         json={"name": student, "role": "student", "level": "novice", "credits": 1000})
    assert made.status_code == 201, made.text
    minted = requests.post(f"{api}/v1/editor-sessions", headers=headers, json={"user": student}, timeout=30)
    assert minted.status_code == 201, minted.text
    link: str = minted.json()["link"]
    assert "/comfy/?ticket=" in link and key not in link
    return link if link.startswith("http") else f"{api}{link}"


def open_editor(browser: Browser, link: str, key: str) -> StockEditor:
    """Open a student's link and wait for the editor; check the session stayed in an HttpOnly cookie."""
    editor = StockEditor(browser)
    editor.open(link)
    assert "ticket=" not in browser.driver.current_url  # the single-use link redirected to /comfy/
    cookies = browser.driver.get_cookies()
    assert any(c["httpOnly"] for c in cookies), cookies
    assert not any(key in c["value"] for c in cookies)  # no API key ever reaches the browser
    classes = sorted({node["class_type"] for node in txt2img().values()})
    assert editor.creatable(*classes) == dict.fromkeys(classes, True), (
        "the editor could not build every node of the graph from /comfy/api/object_info; frontend 1.27 also needs "
        "CheckpointLoaderSimple, ImageOnlyCheckpointLoader, LoraLoader, LoraLoaderModelOnly, VAELoader, "
        "ControlNetLoader, UNETLoader, UpscaleModelLoader, StyleModelLoader and GLIGENLoader defined there "
        f"(useModelToNodeStore.registerDefaults): {browser.errors()}")
    browser.screenshot("loaded")
    return editor


def picture_shown(state: dict[str, Any]) -> bool:
    """Tell whether the SaveImage node shows a loaded picture, fetched through the student's /comfy/ view."""
    return any("/comfy/api/view?" in src for src in state["images"])


def lit(state: dict[str, Any]) -> bool:
    """Tell whether the KSampler is lit up: outlined as the running node, or drawing its progress bar."""
    return state["running"] == SAMPLER or state["node_progress"] is not None


def place(state: dict[str, Any]) -> int:
    """Return the queue counter's number (0 when the badge is hidden)."""
    return int(state["badge"]) if state["badge"] else 0


@pytest.mark.timeout(900)
def test_two_students_run_graphs_in_the_stock_editor_with_a_cap_of_one(
        tmp_path: Path, browsers: Callable[[str], Browser]) -> None:
    with comfyq_up(tmp_path, {"COMFYQ_MAX_ADMITTED": "1"}) as (proc, ports, lines), told_on_failure(lines):
        key = admin_key_of(proc, lines)
        api = f"http://127.0.0.1:{ports['api']}"
        for sim in ("sim0", "sim1"):  # slow sampling on both instances; no cache, so each run really runs
            requests.post(f"http://127.0.0.1:{ports[sim]}/sim/config", timeout=10,
                          json={"step_seconds": STEP_SECONDS, "cache": False}).raise_for_status()
        a, b = (open_editor(browsers(name), mint_link(api, key, name), key) for name in STUDENTS)
        a.load(txt2img(seed=11, steps=STEPS, prefix="student-a"), "student-a.json")
        b.load(txt2img(seed=22, steps=STEPS, prefix="student-b"), "student-b.json")

        def now(editor: StockEditor) -> dict[str, Any]:
            return editor.state(SAVE, SAMPLER)

        # A presses Run: the queue counter appears, then the KSampler runs, outlined, with its progress bar.
        a.press_run()
        a.until(lambda: now(a)["busy"], 120, "A's prompt never started executing")
        a.until(lambda: lit(now(a)), 60, "A's KSampler was never outlined nor showed a progress bar")
        a.browser.screenshot("running")

        # B presses Run while A's job holds the only slot: B's editor shows a place in the queue, not a run.
        b.press_run()
        b.until(lambda: place(now(b)) >= 1, 60, "B's editor never showed a queue place")
        queued = b.seen[-1]
        a_then = now(a)  # read after B's: A was still running when B showed its place
        b.browser.screenshot("queued")
        assert not queued["busy"] and queued["running"] is None and not queued["images"], queued
        assert a_then["busy"] and not picture_shown(a_then), (
            f"A's job ended before B's place could be seen (make STEPS larger): {a.seen}")

        # Both finish; at no moment do both run (B read first, so an overlap seen is a real one).
        overlaps: list[tuple[dict[str, Any], dict[str, Any]]] = []

        def both_done() -> bool:
            b_now = now(b)
            a_now = now(a)
            if a_now["busy"] and b_now["busy"]:
                overlaps.append((a_now, b_now))
            return picture_shown(a_now) and picture_shown(b_now)

        a.until(both_done, 180, f"not both pictures arrived (B saw {b.seen})")
        a.browser.screenshot("done")
        b.browser.screenshot("done")

    assert overlaps == [], f"both students' jobs ran at once despite the cap of 1: {overlaps[:3]}"
    # A: the counter showed the job; the KSampler was outlined or drew its progress bar, and the editor got
    # its steps; the picture arrived on the SaveImage node.
    assert any(place(s) >= 1 for s in a.seen), a.seen
    assert any(s["steps"] and s["steps"]["max"] == STEPS for s in a.seen), a.seen
    # B: a queue place was shown before B's job started, then B ran (lit up too) and got a picture of its own.
    b_started = next((i for i, s in enumerate(b.seen) if s["busy"]), None)
    assert b_started is not None, f"B's run was never seen executing: {b.seen}"
    assert any(place(s) >= 1 for s in b.seen[:b_started]), b.seen
    assert any(lit(s) for s in b.seen[b_started:]), b.seen
    assert picture_shown(b.seen[-1]) and b.seen[-1]["images"] != a.seen[-1]["images"]
    for student in (a, b):
        posted = [x for x in student.browser.requests() if x.method == "POST" and x.url.endswith("/comfy/api/prompt")]
        assert [x.status for x in posted] == [200], posted
        assert all(shot.is_file() and shot.read_bytes()[:4] == b"\x89PNG" for shot in student.browser.shots)
