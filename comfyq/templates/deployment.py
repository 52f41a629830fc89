"""Open the template store the way a deployment is configured."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .sim_catalogue import simulator_catalogue
from .errors import TemplateError, UnknownTemplate
from .formulas import configure_limits
from .store import TemplateStore, check_templates


def deployment_catalogue(extra: str | None) -> dict[str, Any]:
    """Return the simulator's catalogue, overlaid with an exported ``/object_info`` file if one is named."""
    catalogue = simulator_catalogue()
    if extra:
        try:
            catalogue.update(json.loads(Path(extra).read_text()))
        except (OSError, ValueError) as exc:
            raise TemplateError(extra, f"COMFYQ_TEMPLATE_CATALOGUE is not a readable object_info JSON: {exc}") from exc
    return catalogue


def open_store(config: Mapping[str, Any]) -> TemplateStore:
    """Load every template in the configured folder against the configured catalogue and limits."""
    configure_limits(max_output_pixels=config["MAX_OUTPUT_PIXELS"])
    return TemplateStore.load(config["TEMPLATES_DIR"], deployment_catalogue(config["TEMPLATE_CATALOGUE"]))


def check_store(config: Mapping[str, Any], catalogue: Mapping[str, Any] | None = None) -> list[str]:
    """List every problem of the configured templates ("path: reason")."""
    configure_limits(max_output_pixels=config["MAX_OUTPUT_PIXELS"])
    return check_templates(config["TEMPLATES_DIR"], catalogue or deployment_catalogue(config["TEMPLATE_CATALOGUE"]))


def node_labels(store: TemplateStore, template: str | None, version: int | None) -> dict[str, str]:
    """Return the friendly node names of a template version; none for raw workflows or unknown versions."""
    if not template:
        return {}
    try:
        return dict(store.get(f"{template}@{version}").node_labels)
    except UnknownTemplate:  # this process's templates lack that version: class types will do
        return {}
