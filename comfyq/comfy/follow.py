"""Follow one prompt to its end over the websocket, falling back to /history and /queue."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import payloads
from .errors import ComfyTimeout, ComfyUnreachable, PromptLost

if TYPE_CHECKING:
    from .client import ComfyClient

logger = logging.getLogger(__name__)

OnEvent = Callable[[str, dict[str, Any]], None]
Poll = Callable[[], None]


class Follower:
    """Wait for one prompt's end, reporting its messages; used once by ComfyClient.follow."""

    def __init__(self, client: ComfyClient, prompt_id: str, on_event: OnEvent | None,
                 timeout: float | None, poll: Poll | None, poll_interval: float,
                 silence_check: float | None = None) -> None:
        self.client = client
        self.silence_check = client.silence_check if silence_check is None else silence_check
        self.prompt_id = prompt_id
        self.on_event = on_event
        self.timeout = timeout
        self.poll = poll
        self.poll_interval = max(poll_interval, 0.01)
        now = time.monotonic()
        self.deadline = None if timeout is None else now + timeout
        # The first poll() comes a poll interval in: a short prompt's end is not held up behind it.
        self.last_poll = now
        self.last_heard = now
        self.started = False  # no message about this prompt seen yet
        self.last_checked = now
        self.check_due: float | None = None

    def run(self) -> dict[str, Any]:
        """Return the prompt's history entry once it succeeds; raise how it ended otherwise."""
        if not self.client.events.connected:
            # Opened late: the prompt may have run already, so ask the server first.
            self._reconnect(after_drop=False)
            entry = self._check_server()
            if entry is not None:
                return entry
        while True:
            self._tick()
            if self.check_due is not None and not self.started and time.monotonic() >= self.check_due:
                self.check_due, self.last_checked = None, time.monotonic()
                self._check_server(finish=False)
            if time.monotonic() - self.last_heard >= self.silence_check:
                entry = self._check_server()
                if entry is not None:
                    return entry
            try:
                event = self.client.events.recv(self._wait())
            except ComfyUnreachable as exc:
                logger.warning("websocket to %s lost while following %s: %s",
                               self.client.base_url, self.prompt_id, exc)
                self._reconnect(after_drop=True)
                entry = self._check_server()
                if entry is not None:
                    return entry
                continue
            if event is None:
                continue
            if event.type == "status" and not self.started:
                # The queue changed before our prompt began: it may have been deleted.
                # Ask /queue at most every pending_check seconds, so a prompt that
                # starts at once costs no extra call. If it ran already, its
                # messages are still ahead of us on the socket.
                if self.check_due is None:
                    self.check_due = max(time.monotonic(), self.last_checked + self.client.pending_check)
                continue
            if event.prompt_id != self.prompt_id:
                continue
            self.started = True
            self.last_heard = time.monotonic()
            if self.on_event is not None:
                self.on_event(event.type, event.data)
            if event.type == "execution_error":
                self._drain()
                raise payloads.failure(self.prompt_id, event.data, self.client.base_url)
            if event.type == "execution_interrupted":
                self._drain()
                raise payloads.interruption(self.prompt_id, event.data, self.client.base_url)
            if event.type == "executing" and event.data.get("node") is None:
                return self._finished()

    def _drain(self) -> None:
        """Read this prompt's last messages, up to `executing null`, before raising."""
        # Left unread, they would end a later follow() of the same prompt id
        # (a resubmission) as soon as it starts.
        end = time.monotonic() + self.client.history_lag
        while (left := end - time.monotonic()) > 0:
            try:
                event = self.client.events.recv(min(left, self.poll_interval))
            except ComfyUnreachable:
                return
            if event is None or event.prompt_id != self.prompt_id:
                continue
            if self.on_event is not None:
                self.on_event(event.type, event.data)
            if event.type == "executing" and event.data.get("node") is None:
                return

    def _tick(self) -> None:
        """Call poll() when it is due and enforce the deadline."""
        now = time.monotonic()
        if self.poll is not None and now - self.last_poll >= self.poll_interval:
            self.last_poll = now
            self.poll()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self._timed_out()

    def _timed_out(self) -> ComfyTimeout:
        """Build the error for a follow() that ran past its timeout."""
        return ComfyTimeout(f"prompt {self.prompt_id} still not over after {self.timeout} s",
                            self.client.base_url, self.timeout)

    @contextmanager
    def _bounded(self) -> Iterator[None]:
        """Cap HTTP calls made inside the block by the deadline."""
        try:
            with self.client.http.capped(self._left()):
                yield
        except ComfyTimeout as exc:
            left = self._left()
            if left is not None and left <= 0.05:
                raise self._timed_out() from exc
            raise

    def _left(self) -> float | None:
        """Return the seconds left before the deadline, None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _wait(self) -> float:
        """Return how long the next receive may block."""
        now = time.monotonic()
        until = [self.last_heard + self.silence_check]
        if self.check_due is not None and not self.started:
            until.append(self.check_due)
        if self.poll is not None:
            until.append(self.last_poll + self.poll_interval)
        if self.deadline is not None:
            until.append(self.deadline)
        return max(min(until) - now, 0.005)

    def _sleep(self, seconds: float) -> None:
        """Sleep, still polling and honouring the deadline."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._tick()
            time.sleep(min(left, self.poll_interval))
        self._tick()

    def _reconnect(self, after_drop: bool) -> None:
        """Reopen the websocket with the same client id, backing off; raise ComfyUnreachable."""
        delay = self.client.reconnect_backoff
        for attempt in range(1, self.client.reconnect_attempts + 1):
            if attempt > 1 or after_drop:
                # After a drop, ComfyUI forgets the client id when the old socket's
                # handler ends: a new socket registered before that is forgotten too.
                self._sleep(delay)
                delay = min(delay * 2, 2.0)
            try:
                self.client.events.connect()
                self.last_heard = time.monotonic()
                return
            except ComfyUnreachable as exc:
                if attempt == self.client.reconnect_attempts:
                    raise
                logger.info("websocket reconnect %d to %s failed: %s",
                            attempt, self.client.base_url, exc)

    def _check_server(self, finish: bool = True) -> dict[str, Any] | None:
        """Ask /queue then /history: None while queued; the outcome once finished.

        With finish=False, only raise PromptLost; a finished prompt gives None.
        """
        # Queue before history: a prompt that finishes in between moves from the
        # queue into the history, so this order never misses it.
        for attempt in range(2):
            with self._bounded():
                listing = self.client.queue()
                queued = self.prompt_id in listing["running"] + listing["pending"]
                entry = None if queued else self.client.history(self.prompt_id)
            if queued:
                self.last_heard = time.monotonic()
                return None
            if entry is not None:
                if not finish:
                    return None
                return payloads.outcome(self.prompt_id, entry, self.client.base_url)
            if attempt == 0:
                self._sleep(0.1)
        raise PromptLost(f"prompt {self.prompt_id} is in neither the queue nor the history",
                         self.client.base_url, self.prompt_id)

    def _finished(self) -> dict[str, Any]:
        """Return the outcome from /history once the server said the prompt is over."""
        # History is written just before `executing null` is sent; wait briefly anyway.
        end = time.monotonic() + self.client.history_lag
        delay = 0.02
        while True:
            with self._bounded():
                entry = self.client.history(self.prompt_id)
            if entry is not None:
                return payloads.outcome(self.prompt_id, entry, self.client.base_url)
            if time.monotonic() >= end:
                raise PromptLost(f"prompt {self.prompt_id} ended but has no history",
                                 self.client.base_url, self.prompt_id)
            self._sleep(delay)
            delay = min(delay * 2, 0.25)
