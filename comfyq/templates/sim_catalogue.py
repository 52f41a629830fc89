"""The simulator's node catalogue, built offline, for checking templates without a server."""
from __future__ import annotations

import tempfile
from typing import Any

from ..sim.catalogue import Env, object_info
from ..sim.files import Folders
from ..sim.knobs import Knobs


def simulator_catalogue() -> dict[str, Any]:
    """Return what the simulator's ``GET /object_info`` answers, with default knobs and no input files."""
    with tempfile.TemporaryDirectory(prefix="comfyq-catalogue-") as base:
        return object_info(Env(Folders.create(base), Knobs()))
