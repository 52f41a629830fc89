"""Open the stores a deployment is configured for: local directories or one S3 bucket."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from .base import Store
from .local import LocalStore


class Stores(NamedTuple):
    """The app's two stores."""

    outputs: Store
    inputs: Store


def open_stores(config: Mapping[str, Any]) -> Stores:
    """Return the configured stores of outputs and of input images."""
    if config["STORAGE"] == "s3":
        from .s3 import S3Store  # boto3 is heavy: loaded only where S3 is configured

        return Stores(S3Store.from_config(config, "outputs/"), S3Store.from_config(config, "inputs/"))
    return Stores(LocalStore(config["OUTPUT_DIR"]), LocalStore(config["INPUT_DIR"]))
