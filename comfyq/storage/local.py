"""A local directory as a store (the embedded default)."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from .base import Store


class LocalStore(Store):
    """Files under a directory: ``<root>/<key>``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def local_path(self, key: str) -> Path:
        """Return the file of ``key``."""
        return self.root / key

    def read(self, key: str) -> bytes:
        """Return the bytes of ``key``."""
        return self.local_path(key).read_bytes()

    def exists(self, key: str) -> bool:
        """Return whether ``key`` is a file."""
        return self.local_path(key).is_file()

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """Yield a file to write ``key`` into; it appears under its name only if the block succeeds."""
        target = self.root / key
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
