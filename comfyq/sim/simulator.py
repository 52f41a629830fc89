"""The pieces of one simulated ComfyUI instance, wired together."""
from __future__ import annotations

import asyncio

from .catalogue import Env
from .executor import Executor
from .files import Folders
from .outbox import Hub
from .journal import Journal
from .knobs import Knobs
from .prompt_queue import PromptQueue


class Simulator:
    """Folders, websocket hub, prompt queue, executor and journal of one instance."""

    def __init__(self, folders: Folders, knobs: Knobs, journal: Journal | None = None) -> None:
        self.folders = folders
        self.journal = journal or Journal()
        self.hub = Hub()
        self.queue = PromptQueue(self.hub)
        self.executor = Executor(self.hub, self.queue, folders, knobs, self.journal)
        # ComfyUI numbers prompts from 0 per process; front=True negates the number.
        self.number = 0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def knobs(self) -> Knobs:
        """Return the instance knobs."""
        return self.executor.knobs

    @knobs.setter
    def knobs(self, value: Knobs) -> None:
        self.executor.knobs = value

    def env(self) -> Env:
        """Return what the catalogue's combo lists come from."""
        return self.executor.env()

    def next_number(self, front: bool) -> int:
        """Return the queue number for a prompt without an explicit one."""
        number = -self.number if front else self.number
        self.number += 1
        return number

    def start(self) -> None:
        """Start the websocket publisher and the prompt worker."""
        self._tasks = [
            asyncio.create_task(self.hub.publish_loop(), name="sim-publisher"),
            asyncio.create_task(self.executor.run_forever(), name="sim-executor"),
        ]

    async def stop(self) -> None:
        """Stop the background tasks and close the journal."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.journal.close()
