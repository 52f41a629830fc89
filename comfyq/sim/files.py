"""The simulator's input, output and temp folders, and ComfyUI's file-name rules."""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from dataclasses import dataclass

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FOLDER_TYPES = ("input", "output", "temp")


class SaveOutsideOutputError(Exception):
    """A filename_prefix that would write outside the output folder."""


@dataclass(frozen=True)
class Folders:
    """The base directory and its input/, output/ and temp/ subfolders."""

    base: str
    owned: bool = False

    @classmethod
    def create(cls, base: str | None) -> "Folders":
        """Make the folders under base, or under a fresh temporary directory."""
        owned = base is None
        root = os.path.abspath(base) if base else tempfile.mkdtemp(prefix="comfyq-sim-")
        folders = cls(root, owned)
        for folder in (folders.input, folders.output, folders.temp):
            os.makedirs(folder, exist_ok=True)
        # ComfyUI empties its temp folder on start; previews do not survive a restart.
        shutil.rmtree(folders.temp, ignore_errors=True)
        os.makedirs(folders.temp, exist_ok=True)
        return folders

    @property
    def input(self) -> str:
        return os.path.join(self.base, "input")

    @property
    def output(self) -> str:
        return os.path.join(self.base, "output")

    @property
    def temp(self) -> str:
        return os.path.join(self.base, "temp")

    def by_type(self, kind: str | None) -> str | None:
        """Return the folder for a ``type`` value, or None when unknown."""
        if kind in FOLDER_TYPES:
            return os.path.join(self.base, kind)
        return None

    def input_images(self) -> list[str]:
        """List the image files LoadImage offers: top-level files of input/, as ComfyUI does."""
        names = [n for n in os.listdir(self.input) if os.path.isfile(os.path.join(self.input, n))]
        return sorted(n for n in names if n.lower().endswith(IMAGE_EXTENSIONS))

    def annotated(self, name: str, default: str = "input") -> tuple[str, str]:
        """Split a ``name.png [output]`` annotation into (name, folder)."""
        for kind in FOLDER_TYPES:
            suffix = f" [{kind}]"
            if name.endswith(suffix):
                return name[: -len(suffix)], os.path.join(self.base, kind)
        return name, os.path.join(self.base, default)

    def input_path(self, name: str) -> str:
        """Return the path a LoadImage value points at."""
        name, folder = self.annotated(name)
        return os.path.join(folder, name)

    def cleanup(self) -> None:
        """Remove the base directory if this process created it."""
        if self.owned:
            shutil.rmtree(self.base, ignore_errors=True)


def file_digest(path: str) -> str:
    """Return the sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def inside(folder: str, path: str) -> bool:
    """Tell whether path stays inside folder once resolved."""
    folder = os.path.abspath(folder)
    return os.path.commonpath((folder, os.path.abspath(path))) == folder


def next_save_path(folder: str, prefix: str) -> tuple[str, str, str, int]:
    """Return (full folder, base name, subfolder, next counter) for a filename_prefix.

    Counters continue after the highest ``<name>_NNNNN_`` already in the folder,
    so a restarted server never overwrites an earlier output.
    """
    normalised = os.path.normpath(prefix)
    subfolder = os.path.dirname(normalised)
    name = os.path.basename(normalised)
    full = os.path.join(folder, subfolder) if subfolder else folder
    if not inside(folder, full):
        raise SaveOutsideOutputError(
            f"**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {os.path.abspath(full)}\n         output_dir: {folder}"
        )
    os.makedirs(full, exist_ok=True)
    highest = 0
    for existing in os.listdir(full):
        if not existing.startswith(name + "_"):
            continue
        digits = existing[len(name) + 1 :].split("_")[0]
        if digits.isdigit() and existing[len(name) + 1 + len(digits) :].startswith("_"):
            highest = max(highest, int(digits))
    return full, name, subfolder.replace(os.sep, "/"), highest + 1


def temp_prefix() -> str:
    """Return a PreviewImage prefix like ComfyUI's ``ComfyUI_temp_abcde``."""
    return "ComfyUI_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
