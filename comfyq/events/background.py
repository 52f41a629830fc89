"""Log a run's progress and output events from a thread of their own, off the worker's path, in order.

A GPU worker tells each execution message as it reads it from the instance's
websocket; logging each one there would hold the next message (the prompt's
end, say) for a Redis round trip. ``Background.put`` queues the news instead,
and one thread per process sends all it finds queued in one call (one round
trip), in the order queued. ``flush`` waits until everything queued so far is logged:
the announcer calls it before a job's move is logged, so a run's final event
always comes after all of its progress (comfyq.events.announcer).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Callable, Generic, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Background(Generic[T]):
    """One thread that sends queued items in order, all those waiting in one call of ``send``."""

    def __init__(self, send: Callable[[list[T]], None], most: int = 100) -> None:
        self.send, self.most = send, most
        self.pid: int | None = None
        self.lock = threading.Lock()
        self.queue: queue.Queue[T | threading.Event] = queue.Queue()
        self.thread: threading.Thread | None = None

    def put(self, item: T) -> None:
        """Queue ``item`` after those queued before it, starting the thread in this process if need be."""
        self._ensure()
        self.queue.put(item)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is sent; return False if that took over ``timeout``."""
        if self.pid != os.getpid() or self.queue.unfinished_tasks == 0:
            return True
        done = threading.Event()
        self.queue.put(done)
        return done.wait(timeout)

    def _ensure(self) -> None:
        """Start the thread once per process (a forked pool child starts its own)."""
        if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
            return
        with self.lock:
            if self.pid != os.getpid():
                self.queue = queue.Queue()  # a fork's copy may hold its parent's items and a stale count
                self.thread = None
            self.pid = os.getpid()
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, args=(self.queue,), name="comfyq-events",
                                               daemon=True)
                self.thread.start()

    def _run(self, waiting: queue.Queue[T | threading.Event]) -> None:
        """Send queued items, all those waiting at once, then wake who flushed behind them; for ever."""
        while True:
            batch = [waiting.get()]
            while len(batch) < self.most:
                try:
                    batch.append(waiting.get_nowait())
                except queue.Empty:
                    break
            items = [item for item in batch if not isinstance(item, threading.Event)]
            try:
                if items:
                    self.send(items)
            except Exception:  # noqa: BLE001 - the thread must live on to send the run's next events
                logger.exception("%d queued items were not sent", len(items))
            finally:
                for item in batch:
                    if isinstance(item, threading.Event):
                        item.set()
                    waiting.task_done()
