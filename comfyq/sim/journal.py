"""An append-only record of what a simulator did: one ``<event> <prompt_id>`` line each."""
from __future__ import annotations

import collections
import os


class Journal:
    """Append event lines to a file, each written at once; a no-op without a path."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        # O_APPEND with one os.write per line: no buffer to lose on SIGKILL, and a
        # restarted simulator appending while the old one dies never interleaves lines.
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None

    def record(self, event: str, prompt_id: str = "-") -> None:
        """Append one line for event."""
        if self._fd is not None:
            os.write(self._fd, f"{event} {prompt_id}\n".encode())

    def close(self) -> None:
        """Close the file; later records are dropped."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def counts(path: str, event: str) -> collections.Counter[str]:
    """Return prompt id -> number of lines of event in the journal at path (empty if none)."""
    found: collections.Counter[str] = collections.Counter()
    try:
        with open(path) as fh:
            for line in fh:
                name, _, prompt_id = line.rstrip("\n").partition(" ")
                if name == event:
                    found[prompt_id] += 1
    except FileNotFoundError:
        pass
    return found
