"""The pending heap, the running item and the in-memory history."""
from __future__ import annotations

import asyncio
import heapq
from typing import Any

from .outbox import Hub

MAX_HISTORY = 10_000

# (number, prompt_id, prompt, extra_data, outputs_to_execute), as ComfyUI keeps them.
QueueItem = tuple[Any, str, dict[str, Any], dict[str, Any], list[str]]


class PromptQueue:
    """ComfyUI's PromptQueue: a heap ordered by number, one item running at a time."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pending: list[QueueItem] = []
        self.running: dict[int, QueueItem] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.flags: dict[str, Any] = {}
        self._task_counter = 0
        self._wakeup = asyncio.Event()

    def queue_info(self) -> dict[str, Any]:
        """Return the ``status`` payload: running plus pending."""
        return {"exec_info": {"queue_remaining": len(self.pending) + len(self.running)}}

    def _updated(self) -> None:
        self.hub.send("status", {"status": self.queue_info()})

    def put(self, item: QueueItem) -> None:
        """Queue an item and tell every client the queue changed."""
        heapq.heappush(self.pending, item)
        self._updated()
        self._wakeup.set()

    async def get(self) -> tuple[QueueItem, int] | None:
        """Take the lowest-numbered item; return None when woken by a flag instead."""
        while not self.pending:
            self._wakeup.clear()
            if self.flags:
                return None
            await self._wakeup.wait()
        item = heapq.heappop(self.pending)
        task_id = self._task_counter
        self._task_counter += 1
        self.running[task_id] = item
        self._updated()
        return item, task_id

    def task_done(self, task_id: int, result: dict[str, Any], status: dict[str, Any]) -> None:
        """Move a finished item into history and tell every client."""
        item = self.running.pop(task_id)
        prompt_id = item[1]
        if prompt_id not in self.history and len(self.history) >= MAX_HISTORY:
            self.history.pop(next(iter(self.history)))
        self.history[prompt_id] = {"prompt": list(item), "outputs": {}, "status": status, **result}
        self._updated()

    def running_ids(self) -> list[str]:
        """Return the prompt ids being executed now."""
        return [item[1] for item in self.running.values()]

    def snapshot(self) -> tuple[list[QueueItem], list[QueueItem]]:
        """Return (running, pending) with pending in heap order, as ``/queue`` shows it."""
        return list(self.running.values()), list(self.pending)

    def wipe(self) -> None:
        """Drop every pending item."""
        self.pending = []
        self._updated()

    def delete(self, prompt_id: str) -> bool:
        """Drop one pending item by prompt id; never touches the running one."""
        for index, item in enumerate(self.pending):
            if item[1] == prompt_id:
                self.pending.pop(index)
                heapq.heapify(self.pending)
                self._updated()
                return True
        return False

    def get_history(self, prompt_id: str | None = None, max_items: int | None = None,
                    offset: int = -1) -> dict[str, Any]:
        """Return one prompt's history, or the newest max_items entries."""
        if prompt_id is not None:
            entry = self.history.get(prompt_id)
            return {prompt_id: entry} if entry is not None else {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out: dict[str, Any] = {}
        for index, (key, entry) in enumerate(self.history.items()):
            if index < offset:
                continue
            out[key] = entry
            if max_items is not None and len(out) >= max_items:
                break
        return out

    def wipe_history(self) -> None:
        """Forget all history."""
        self.history = {}

    def delete_history(self, prompt_id: str) -> None:
        """Forget one history entry."""
        self.history.pop(prompt_id, None)

    def set_flag(self, name: str, value: Any) -> None:
        """Ask the executor to act (free memory, unload models) when it is between prompts."""
        self.flags[name] = value
        self._wakeup.set()

    def take_flags(self) -> dict[str, Any]:
        """Return and clear the pending flags."""
        flags, self.flags = self.flags, {}
        return flags
