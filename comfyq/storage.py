"""Local output store: files under COMFYQ_OUTPUT_DIR, written atomically."""
from __future__ import annotations

import mimetypes
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """Return ``name`` reduced to a file name that is safe in paths and URLs."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "output"
    stem, dot, ext = cleaned.rpartition(".") if "." in cleaned else (cleaned, "", "")
    return f"{stem[:180]}{dot}{ext[:16]}" if len(cleaned) > 200 else cleaned


def unique_name(name: str, taken: set[str]) -> str:
    """Return ``name``, or ``stem-2.ext``, ``stem-3.ext``…, whichever is not taken yet; record it."""
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    taken.add(candidate)
    return candidate


def content_type(name: str) -> str:
    """Guess a MIME type from a file name."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class LocalStore:
    """Stores job outputs as ``<root>/<job id>/<name>``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, relative: str) -> Path:
        """Return where a stored output lives on disk."""
        return self.root / relative

    def relative(self, job_id: str, name: str) -> str:
        """Return the path of an output relative to the store root."""
        return f"{job_id}/{name}"

    @contextmanager
    def writer(self, job_id: str, name: str) -> Iterator[BinaryIO]:
        """Yield a file to write an output into; it appears under its name only if the block succeeds."""
        target = self.root / self.relative(job_id, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove_job(self, job_id: str) -> None:
        """Delete every stored output of a job."""
        folder = self.root / job_id
        if folder.is_dir():
            for child in folder.iterdir():
                child.unlink(missing_ok=True)
            folder.rmdir()
