"""File naming: SaveImage counters and path safety; cheap deterministic images."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from comfyq.sim import images
from comfyq.sim.files import Folders, SaveOutsideOutputError, inside, next_save_path


def test_counter_continues_after_highest_existing(tmp_path: Path) -> None:
    for name in ("shot_00001_.png", "shot_00007_.png", "shot_extra_00009_.png", "other_00050_.png"):
        (tmp_path / name).write_bytes(b"")
    full, name, subfolder, counter = next_save_path(str(tmp_path), "shot")
    assert (full, name, subfolder, counter) == (str(tmp_path), "shot", "", 8)


def test_prefix_with_subfolder(tmp_path: Path) -> None:
    full, name, subfolder, counter = next_save_path(str(tmp_path), "jobs/abc")
    assert Path(full) == tmp_path / "jobs" and name == "abc" and subfolder == "jobs" and counter == 1


def test_prefix_escaping_output_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SaveOutsideOutputError):
        next_save_path(str(tmp_path), "../escape")


def test_folders_and_annotations(tmp_path: Path) -> None:
    folders = Folders.create(str(tmp_path))
    assert Path(folders.input).is_dir() and Path(folders.output).is_dir() and Path(folders.temp).is_dir()
    (Path(folders.input) / "a.png").write_bytes(b"x")
    assert folders.input_images() == ["a.png"]
    assert folders.annotated("b.png [output]") == ("b.png", folders.output)
    assert inside(folders.base, folders.input) and not inside(folders.input, folders.base)


def test_render_is_deterministic_sized_and_fast() -> None:
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        first = images.render("key", 0, 64, 64)
        timings.append(time.perf_counter() - started)
    assert first.size == (64, 64) and first.tobytes() == images.render("key", 0, 64, 64).tobytes()
    assert first.tobytes() != images.render("key", 1, 64, 64).tobytes()
    assert min(timings) < 0.005
