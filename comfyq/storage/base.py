"""The store interface: files under keys, written atomically, and the names they are kept under.

Keys are relative paths: ``<job id>/<name>`` for outputs, ``<sha256>.<ext>`` for
input images. A store writes atomically (a key appears only once its bytes are
complete) and can hand out a time-limited URL when clients may fetch directly.
"""
from __future__ import annotations

import mimetypes
import re
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

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


class Store(ABC):
    """A place for files under keys; outputs and input images each have one."""

    def relative(self, job_id: str, name: str) -> str:
        """Return the key of a job's output."""
        return f"{job_id}/{name}"

    @abstractmethod
    def writer(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Return a context giving a file to write ``key`` into; the key appears only if the block succeeds."""

    @abstractmethod
    def read(self, key: str) -> bytes:
        """Return the bytes stored under ``key`` (FileNotFoundError if there are none)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether ``key`` holds a file."""

    @abstractmethod
    def remove_job(self, job_id: str) -> None:
        """Delete every stored output of a job."""

    def local_path(self, key: str) -> Path | None:
        """Return the file of ``key`` on this machine, if the store is a local directory."""
        return None

    def url(self, key: str, download_name: str, content_type: str) -> str | None:
        """Return a time-limited URL clients may fetch ``key`` from directly, if the store offers one."""
        return None
