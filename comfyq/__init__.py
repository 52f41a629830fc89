"""comfyq: one production job queue in front of many ComfyUI servers."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from flask import Flask

__version__ = "0.1.0"


def create_app(config: Mapping[str, Any] | None = None) -> "Flask":
    """Build the comfyq Flask app (imported lazily so the simulator and client stay light)."""
    from .app import create_app as _create_app

    return _create_app(config)
