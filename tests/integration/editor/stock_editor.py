"""What a student does in ComfyUI's stock editor (comfyui-frontend-package 1.27.x), as a test drives it.

The editor is a Vue app around a LiteGraph canvas. What these helpers rely on, found by reading the
package's bundle (``static/assets/index-*.js``, ``GraphView-*.js``) and by running it:

- ``window.app`` is set once the app finished its set-up; ``app.extensionManager.workflow.activeWorkflow``
  once the start-up workflow is open. A first-time user then gets the "Get Started with a Template" dialog.
- ``app.loadApiJson(graph, name)`` lays out an API-format graph on the canvas (as dropping its file would).
- The Run button is the main half of the split button ``[data-testid="queue-button"]``; Ctrl+Enter does the same.
- The queue counter is the badge on the sidebar's queue tab (``.queue-tab-button .p-badge``): the last
  ``status`` message's ``exec_info.queue_remaining``, hidden at 0.
- While a prompt of the tab executes (the Pinia store "execution" is not ``isIdle``: from ``execution_start`` to
  ``executing`` with node null), ``document.title`` starts with the run's percentage (``[57%]...``).
- The running node's outline (``app.runningNodeId``) and the progress bar drawn on it (``node.progress``) come
  from ``progress_state`` messages only; ``progress`` messages only set ``app.progress`` (``{value, max}``).
- After ``executed``, the SaveImage node's ``imgs`` holds the loaded ``<img>`` elements (``/api/view`` URLs),
  once the canvas has drawn that node (hence the fit-to-view after loading a graph).
"""
from __future__ import annotations

from typing import Any, Callable

from selenium.common.exceptions import ElementClickInterceptedException, TimeoutException, WebDriverException
from selenium.webdriver.common.by import By

from tests.browser import Browser

RUN_BUTTON = '[data-testid="queue-button"] .p-splitbutton-button'
QUEUE_BADGE = ".queue-tab-button .p-badge"
DIALOG_MASK = ".p-dialog-mask"

# One round of what the page shows, read in one script so the values belong together.
# arguments: the SaveImage node's id, the KSampler's id, the queue badge's selector.
STATE = """
const save = app.graph && app.graph.getNodeById(arguments[0]);
const sampler = app.graph && app.graph.getNodeById(arguments[1]);
const badge = document.querySelector(arguments[2]);
const root = document.getElementById("vue-app");
const pinia = root && root.__vue_app__ && root.__vue_app__.config.globalProperties.$pinia;
const execution = pinia && pinia._s.get("execution");
return {
  title: document.title,
  busy: execution ? !execution.isIdle : null,
  running: app.runningNodeId == null ? null : String(app.runningNodeId),
  node_progress: sampler && typeof sampler.progress === "number" ? sampler.progress : null,
  steps: app.progress ? {value: app.progress.value, max: app.progress.max} : null,
  badge: badge ? badge.textContent.trim() : null,
  images: save && save.imgs ? save.imgs.filter(i => i.complete && i.naturalWidth > 0).map(i => i.src) : [],
};
"""


class StockEditor:
    """One student's tab of the editor."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.seen: list[dict[str, Any]] = []  # every distinct state() read, in order

    def open(self, url: str, timeout: float = 120) -> None:
        """Open ``url`` and wait until the editor finished starting (its start-up workflow is open)."""
        self.browser.driver.get(url)
        self.until(lambda: self.browser.js(
            "return !!(window.app && app.graph && app.extensionManager && app.extensionManager.workflow"
            " && app.extensionManager.workflow.activeWorkflow && document.querySelector(arguments[0]))", RUN_BUTTON),
            timeout, "the editor did not finish starting")

    def creatable(self, *classes: str) -> dict[str, bool]:
        """Tell which node classes the editor can put on its canvas (built from /object_info without an error)."""
        found: dict[str, bool] = self.browser.js(
            "return Object.fromEntries(arguments[0].map(c => {"
            "  try { return [c, !!LiteGraph.createNode(c)]; } catch (e) { return [c, false]; } }))",
            list(classes))
        return found

    def close_dialogs(self) -> bool:
        """Close an open dialog (a first visit opens the template browser), as a user would; True when none is left."""
        masks = self.browser.driver.find_elements(By.CSS_SELECTOR, DIALOG_MASK)
        if not masks:
            return True
        for button in self.browser.driver.find_elements(By.CSS_SELECTOR, ".p-dialog-close-button"):
            try:
                button.click()
            except WebDriverException:
                pass  # gone or covered already: the next round looks again
        return False

    def load(self, graph: dict[str, Any], name: str = "lesson.json") -> None:
        """Load an API-format graph onto the canvas (as dropping its JSON file does); wait for every node."""
        self.browser.js("app.loadApiJson(arguments[0], arguments[1])", graph, name)
        wanted = sorted(graph)
        self.until(lambda: sorted(self.browser.js("return app.graph._nodes.map(n => String(n.id))")) == wanted,
                   30, f"the graph did not load (nodes {wanted})")
        # Fit the whole graph in the window, so every node is drawn (the editor loads a node's images as it draws it).
        self.browser.js("return app.extensionManager.command.execute('Comfy.Canvas.FitView')")

    def press_run(self, timeout: float = 30) -> None:
        """Click the editor's Run button, closing any dialog that covers it first."""
        def click() -> bool:
            if not self.close_dialogs():
                return False
            try:
                self.browser.driver.find_element(By.CSS_SELECTOR, RUN_BUTTON).click()
            except ElementClickInterceptedException:  # a dialog opened meanwhile: close it next round
                return False
            return True
        self.until(click, timeout, "the Run button could not be pressed")

    def state(self, save: str, sampler: str) -> dict[str, Any]:
        """Read what the page shows now; remember it in ``seen`` when it changed.

        ``busy``: a prompt of this tab is executing (the title then shows its percentage); ``running``: the
        node the canvas outlines; ``node_progress``: the bar drawn on the ``sampler`` node (0..1); ``steps``: the
        last ``progress`` message; ``badge``: the queue counter; ``images``: the pictures loaded on ``save``.
        """
        now: dict[str, Any] = self.browser.js(STATE, int(save), int(sampler), QUEUE_BADGE)
        if not self.seen or self.seen[-1] != now:
            self.seen.append(now)
        return now

    def until(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        """Wait until ``condition()`` is true; else fail saying ``what`` did not happen, what was seen, what failed."""
        try:
            self.browser.wait(timeout).until(lambda _: condition())
        except TimeoutException:
            raise AssertionError(f"{self.browser.name}: {what} within {timeout:g} s; the page showed {self.seen}; "
                                 f"errors: {self.browser.errors()}") from None
