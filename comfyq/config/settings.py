"""The Config object: every setting of comfyq.config.table read from the environment, then checked together."""
from __future__ import annotations

import os
from typing import Any, Mapping

from .checks import ConfigError, check
from .parsers import (CONTROL_QUEUE, DEFAULT_ROLE_LIMITS, LIMIT_NAMES, ROLES, SHARED_QUEUE, WEBHOOK_QUEUE, Instance,
                      capability_queue, default_data_dir, default_templates_dir, parse_capabilities, parse_instances,
                      parse_role_limits)
from .table import DEFAULT_BLOCKLIST, SETTINGS

# Imported from here by the rest of comfyq (and by tests); they are defined beside the table.
__all__ = ["CONTROL_QUEUE", "Config", "ConfigError", "DEFAULT_BLOCKLIST", "DEFAULT_ROLE_LIMITS", "Instance",
           "LIMIT_NAMES", "ROLES", "SHARED_QUEUE", "WEBHOOK_QUEUE", "capability_queue", "default_data_dir",
           "default_templates_dir", "parse_capabilities", "parse_instances", "parse_role_limits"]


class Config:
    """Settings for the API, workers and CLI, read once from the environment."""

    def __init__(self, env: Mapping[str, str] | None = None, **overrides: Any) -> None:
        env = os.environ if env is None else env
        read: dict[str, Any] = {}
        for setting in SETTINGS:
            if not setting.reader:  # the others are read by one command (see the table)
                read[setting.attribute] = setting.value(env, read)
        vars(self).update(read)
        check(self)
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {}
        self.API_TITLE = "comfyq"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        self.OPENAPI_SWAGGER_UI_URL = None  # set below only when a local copy exists
        self.OPENAPI_REDOC_PATH = "redoc"
        self.MAX_CONTENT_LENGTH = self.MAX_BODY_BYTES
        self.TESTING = False
        for key, value in overrides.items():
            setattr(self, key, value)

    def __getattr__(self, name: str) -> Any:
        """Raise AttributeError for a setting not read (only to tell type checkers that settings are dynamic)."""
        raise AttributeError(f"{type(self).__name__} has no setting {name!r}")

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as a mapping for ``flask_app.config``."""
        return {key: value for key, value in vars(self).items() if key.isupper()}
