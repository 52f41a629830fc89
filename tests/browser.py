"""Headless Chromium for browser tests: Debian's ``chromium`` driven by Selenium through ``chromium-driver``.

``scripts/test.sh`` installs both Debian packages. Selenium is given the driver's and the browser's paths, so
its Selenium Manager is never consulted and nothing is ever downloaded (``SE_OFFLINE`` says the same to it).

Each :class:`Browser` is a separate Chromium process with a fresh profile, so two of them share no cookies:
one per student. Every browser records what the page asked for (Chrome's performance log: requests, their
status, failures, websocket frames) and what it printed to its console, so a failing test can say which
request failed; :meth:`Browser.report` writes all of it next to the screenshots in the test's ``tmp_path``.

Use the ``browsers`` fixture (import it into the test module)::

    from tests.browser import browsers  # noqa: F401 - a fixture

    def test_page(browsers):
        page = browsers("student-a")
        page.driver.get(url)
        page.screenshot("loaded")
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--window-size=1400,900",
)
NETWORK_SCHEMES = ("http", "https", "ws", "wss")  # not chrome://, data:, blob: (the browser's own)


def missing() -> str | None:
    """Say what is missing to run Chromium here, or None when the browser and its driver are installed."""
    absent = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not absent:
        return None
    return (f"{' and '.join(absent)} not installed: scripts/test.sh installs Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver)")


@dataclass
class Exchange:
    """One request the page made, as Chrome's network log tells it."""

    request_id: str
    method: str
    url: str
    status: int | None = None  # None: no answer (yet), see ``failure``
    failure: str | None = None  # Chrome's error text when the request failed without an answer
    websocket: bool = False

    def __str__(self) -> str:
        answer = "no answer" if self.status is None else str(self.status)
        if self.failure:  # Chrome also reports a load it dropped after the answer (a 404 stylesheet: ERR_ABORTED)
            answer = self.failure if self.status is None else f"{answer}, then {self.failure}"
        return f"{self.method} {self.url} -> {answer}"


@dataclass
class Browser:
    """A headless Chromium of one person, with what it requested and printed since it started."""

    name: str
    driver: webdriver.Chrome
    folder: Path  # screenshots and reports go here (the test's tmp_path)
    exchanges: dict[str, Exchange] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # request ids, first request first
    frames: list[tuple[str, str]] = field(default_factory=list)  # ("sent" | "received", websocket payload)
    console: list[dict[str, Any]] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def wait(self, timeout: float = 60) -> WebDriverWait[webdriver.Chrome]:
        """Return a WebDriverWait of this browser, polling every 0.2 s."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2)

    def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body: ``return ...``) in the page and return its value."""
        return self.driver.execute_script(script, *args)

    def screenshot(self, label: str) -> Path:
        """Save a PNG of the window as ``<name>-<n>-<label>.png`` in the test's folder; print and return its path."""
        path = self.folder / f"{self.name}-{len(self.shots) + 1:02d}-{label}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        print(f"screenshot: {path}")
        return path

    def collect(self) -> None:
        """Move what Chrome logged since the last call into ``exchanges``, ``frames`` and ``console``.

        Chrome hands out each log entry once, so every reader goes through here.
        """
        for entry in self.driver.get_log("performance"):
            self._note(json.loads(entry["message"])["message"])
        self.console.extend(self.driver.get_log("browser"))

    def _note(self, event: dict[str, Any]) -> None:
        """Record one DevTools network event."""
        method, params = event.get("method", ""), event.get("params", {})
        rid = params.get("requestId", "")
        if method == "Network.requestWillBeSent":
            request = params["request"]
            if rid in self.exchanges and "redirectResponse" in params:
                # A redirect reuses the id: keep the hop that was answered under an id of its own.
                hop = self.exchanges.pop(rid)
                hop.request_id = f"{rid}#{len(self.order)}"
                hop.status = int(params["redirectResponse"]["status"])
                self.exchanges[hop.request_id] = hop
                self.order[self.order.index(rid)] = hop.request_id
            self.order.append(rid)
            self.exchanges[rid] = Exchange(rid, request["method"], request["url"])
        elif method == "Network.webSocketCreated":
            self.order.append(rid)
            self.exchanges[rid] = Exchange(rid, "GET", params["url"], websocket=True)
        elif method == "Network.responseReceived" and rid in self.exchanges:
            self.exchanges[rid].status = int(params["response"]["status"])
        elif method == "Network.webSocketHandshakeResponseReceived" and rid in self.exchanges:
            self.exchanges[rid].status = int(params["response"]["status"])
        elif method == "Network.loadingFailed" and rid in self.exchanges:
            self.exchanges[rid].failure = params.get("errorText") or "failed"
        elif method == "Network.webSocketClosed" and rid in self.exchanges and self.exchanges[rid].status is None:
            self.exchanges[rid].failure = "websocket closed before its handshake"
        elif method in ("Network.webSocketFrameReceived", "Network.webSocketFrameSent"):
            direction = "received" if method.endswith("Received") else "sent"
            self.frames.append((direction, params.get("response", {}).get("payloadData", "")))

    def requests(self) -> list[Exchange]:
        """Return every request the page made over the network so far (http, https, ws, wss), in order."""
        self.collect()
        made = [self.exchanges[rid] for rid in self.order]
        return [x for x in made if x.url.split(":", 1)[0] in NETWORK_SCHEMES]

    def messages(self) -> list[dict[str, Any]]:
        """Return the JSON websocket messages the page received so far (binary previews left out)."""
        self.collect()
        found = []
        for direction, payload in self.frames:
            if direction == "received":
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    found.append(message)
        return found

    def errors(self) -> list[str]:
        """Return the failed requests (no answer, or 4xx/5xx) and console errors so far, one line each.

        A request answered 2xx/3xx that Chrome then dropped (a fire-and-forget fetch) is not a failure.
        """
        self.collect()
        failed = [x for x in self.requests() if (x.status is None and x.failure) or (x.status or 0) >= 400]
        lines = [f"request failed: {x}" for x in failed]
        lines += [f"console {c['level']}: {c['message']}" for c in self.console if c.get("level") == "SEVERE"]
        return lines

    def report(self) -> Path:
        """Write every request, console line and websocket frame to ``<name>-network.log``; return its path."""
        lines = ["# requests, in order"] + [str(x) for x in self.requests()]
        lines += ["", "# console"] + [f"{c.get('level')}: {c.get('message')}" for c in self.console]
        lines += ["", "# websocket frames"] + [f"{d}: {p[:500]}" for d, p in self.frames]
        path = self.folder / f"{self.name}-network.log"
        path.write_text("\n".join(lines) + "\n")
        return path

    def close(self) -> None:
        """Write the report, print where it and the failures are, and quit the browser."""
        try:
            failed = self.errors()
            print(f"{self.name}: network and console log {self.report()}")
            for line in failed:
                print(f"{self.name}: {line}")
        except WebDriverException as exc:  # the browser is already gone: nothing more to read from it
            print(f"{self.name}: could not read its logs: {exc.msg}")
        finally:
            self.driver.quit()


def start(name: str, folder: Path, profiles: Path) -> Browser:
    """Start a headless Chromium of its own (a fresh profile under ``profiles``) for ``name``."""
    reason = missing()
    if reason:
        pytest.fail(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = profiles / name
    profile.mkdir(parents=True)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(folder / f"{name}-chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(60)
    return Browser(name, driver, folder)


@pytest.fixture
def browsers(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Browser]]:
    """Start browsers by name (each a separate Chromium, no shared cookies); all are closed after the test.

    Screenshots and ``<name>-network.log`` land in the test's ``tmp_path``; profiles in a folder of their own.
    """
    monkeypatch.setenv("SE_OFFLINE", "true")  # should Selenium Manager ever run, it must not download
    profiles = tmp_path_factory.mktemp("chromium-profiles")
    started: list[Browser] = []

    def open_browser(name: str) -> Browser:
        browser = start(name, tmp_path, profiles)
        started.append(browser)
        return browser

    yield open_browser
    for browser in started:
        browser.close()
    shutil.rmtree(profiles, ignore_errors=True)
