"""The browser harness itself (tests/browser.py): Debian's Chromium runs headless here, offline, and reports back.

A trivial page from a local ``http.server``: its title, a screenshot, the failed request it makes, and two
browsers that share no cookies, all without Selenium Manager (which would try to download a driver).
"""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager

from tests.browser import Browser, browsers  # noqa: F401 - browsers is a fixture

PAGE = """<!doctype html>
<html><head><title>comfyq browser harness</title></head>
<body style="background:#1e5fa8;color:white;font:32px sans-serif">
<p id="said">hello from comfyq</p>
<script>
  fetch("/missing.json").then(r => { document.getElementById("said").dataset.status = r.status; });
  console.error("a console error the harness must see");
</script>
</body></html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    """Serve files without logging every request to stderr."""

    def log_message(self, *_: Any) -> None:
        """Keep the test's output for what matters."""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """Serve a folder holding ``index.html`` (PAGE) on a free loopback port; yield its URL."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(PAGE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_selenium_manager(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Make any call of Selenium Manager fail the test; return the list of calls (expected to stay empty)."""
    calls: list[list[str]] = []

    def refuse(self: SeleniumManager, args: list[str]) -> dict[str, str]:
        calls.append(args)
        raise AssertionError(f"Selenium Manager was asked for {args}: it would try to download a driver")

    monkeypatch.setattr(SeleniumManager, "binary_paths", refuse)
    return calls


def test_chromium_opens_a_page_takes_a_screenshot_and_reports_failures(
        site: str, browsers: Callable[[str], Browser], no_selenium_manager: list[list[str]], tmp_path: Path) -> None:
    page = browsers("harness")
    page.driver.get(f"{site}/index.html")
    page.wait(30).until(lambda d: d.find_element(By.ID, "said").get_attribute("data-status") == "404")
    assert page.driver.title == "comfyq browser harness"
    assert page.driver.find_element(By.ID, "said").text == "hello from comfyq"

    shot = page.screenshot("page")
    assert shot.parent == tmp_path and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as image:
        assert image.size == tuple(page.js("return [innerWidth, innerHeight]")) and image.width == 1400  # --window-size
        assert image.getpixel((700, image.height - 50))[:3] == (0x1E, 0x5F, 0xA8)  # the page's background: rendered

    made = [(x.method, x.url.removeprefix(site), x.status) for x in page.requests()]
    assert ("GET", "/index.html", 200) in made and ("GET", "/missing.json", 404) in made
    errors = page.errors()
    assert f"request failed: GET {site}/missing.json -> 404" in errors
    assert any("a console error the harness must see" in line for line in errors)
    report = page.report()
    assert "/missing.json -> 404" in report.read_text()
    assert no_selenium_manager == []


def test_two_browsers_share_no_cookies(site: str, browsers: Callable[[str], Browser],
                                       no_selenium_manager: list[list[str]]) -> None:
    first, second = browsers("student-a"), browsers("student-b")
    for browser in (first, second):
        browser.driver.get(f"{site}/index.html")
    first.js("document.cookie = 'session=first; path=/'")
    assert first.js("return document.cookie") == "session=first"
    second.driver.refresh()
    assert second.js("return document.cookie") == ""
    assert no_selenium_manager == []
