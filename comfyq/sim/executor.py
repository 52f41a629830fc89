"""The prompt worker: takes queue items one at a time and runs them."""
from __future__ import annotations

import asyncio
import logging
import time
import traceback

from .cache import OutputCache
from .catalogue import Env
from .files import Folders
from .outbox import Hub
from .journal import Journal
from .knobs import Knobs
from .prompt_queue import PromptQueue, QueueItem
from .prompt_run import Interrupted, PromptRun

logger = logging.getLogger(__name__)


class Executor:
    """ComfyUI's prompt_worker plus the state its nodes share (interrupts, hangs, cache)."""

    def __init__(self, hub: Hub, queue: PromptQueue, folders: Folders, knobs: Knobs,
                 journal: Journal | None = None) -> None:
        self.hub = hub
        self.queue = queue
        self.folders = folders
        self.knobs = knobs
        self.journal = journal or Journal()
        self.cache = OutputCache()
        self.interrupt_requested = False
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self._hang_release = asyncio.Event()

    def env(self) -> Env:
        """Return what the catalogue's dynamic lists are built from."""
        return Env(self.folders, self.knobs)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Ask the running prompt to stop; a targeted interrupt must name the running prompt."""
        if prompt_id and prompt_id not in self.queue.running_ids():
            logger.info("Prompt %s is not currently running, skipping interrupt", prompt_id)
            return False
        # Like ComfyUI this sets a flag even when idle; the next prompt clears it on start.
        self.interrupt_requested = True
        return True

    def check_interrupt(self) -> None:
        """Raise Interrupted if an interrupt was requested (a cooperative check point)."""
        if self.interrupt_requested:
            self.interrupt_requested = False
            raise Interrupted()

    async def wait_for_hang_release(self) -> None:
        """Block a hanging node until ``release_hang`` (interrupts do not help)."""
        await self._hang_release.wait()

    def release_hangs(self) -> None:
        """Let every hanging node finish; later hangs block again."""
        self._hang_release.set()
        self._hang_release = asyncio.Event()

    async def run_forever(self) -> None:
        """Take and run prompts until the process ends."""
        while True:
            taken = await self.queue.get()
            if taken is not None:
                await self.run_item(*taken)
            flags = self.queue.take_flags()
            if flags.get("free_memory"):
                self.cache.clear()

    async def run_item(self, item: QueueItem, task_id: int) -> None:
        """Run one item, write its history, then announce ``executing: null``."""
        started = time.perf_counter()
        prompt_id = item[1]
        self.interrupt_requested = False
        self.client_id = item[3].get("client_id")
        self.journal.record("started", prompt_id)
        try:
            result, status = await PromptRun(self, item).execute()
        except Exception:
            # A simulator bug must not kill the worker: record it as a failed prompt.
            logger.error("simulator error while running %s:\n%s", prompt_id, traceback.format_exc())
            result = {"outputs": {}, "meta": {}}
            status = {"status_str": "error", "completed": False, "messages": []}
        self.queue.task_done(task_id, result, status)
        self.journal.record("ended", prompt_id)
        if self.client_id is not None:
            self.hub.send("executing", {"node": None, "prompt_id": prompt_id}, self.client_id)
        self.last_node_id = None
        logger.info("Prompt executed in %.3f seconds", time.perf_counter() - started)
