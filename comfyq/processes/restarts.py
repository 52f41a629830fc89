"""Restart policy: growing delays between restarts, and the crash-loop rule that gives up."""
from __future__ import annotations

import time
from collections import deque
from typing import Callable


def backoff(attempt: int, first: float, cap: float) -> float:
    """Return the delay before retry ``attempt`` (1 for the first): ``first``, doubled each time, at most ``cap``."""
    return min(first * 2 ** max(attempt - 1, 0), cap)


def ordinal(n: int) -> str:
    """Return 1st, 2nd, 3rd, 4th… for n."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Restarts:
    """One process's recent deaths: the delay before its next start, and whether it is in a crash loop."""

    def __init__(self, limit: int = 5, window: float = 60.0, first: float = 0.5, cap: float = 8.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.first, self.cap, self.clock = limit, window, first, cap, clock
        self.deaths: deque[float] = deque()

    def recent(self) -> int:
        """Return how many deaths fall within the window."""
        now = self.clock()
        while self.deaths and now - self.deaths[0] > self.window:
            self.deaths.popleft()
        return len(self.deaths)

    def died(self) -> float | None:
        """Count a death; return the delay before the next start, or None when this one completes a crash loop."""
        self.deaths.append(self.clock())
        count = self.recent()
        return None if count >= self.limit else backoff(count, self.first, self.cap)
