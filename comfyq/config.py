"""Configuration: one Config class reading COMFYQ_* environment variables."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
SHARED_QUEUE = "comfy"
CONTROL_QUEUE = "control"


class ConfigError(ValueError):
    """A COMFYQ_* setting is malformed."""


@dataclass(frozen=True)
class Instance:
    """One ComfyUI server that exactly one worker owns."""

    name: str
    url: str

    @property
    def queue(self) -> str:
        """Return the name of this instance's own Celery queue."""
        return f"{SHARED_QUEUE}.{self.name}"


def parse_instances(spec: str) -> dict[str, Instance]:
    """Parse ``gpu0=http://host:8188,gpu1=http://host:8189`` into instances."""
    instances: dict[str, Instance] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip().rstrip("/")
        if not sep or not INSTANCE_NAME.match(name):
            raise ConfigError(f"COMFYQ_INSTANCES entry {item!r}: expected name=http://host:port "
                              "with a lowercase name of letters, digits, '-' or '_'")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"COMFYQ_INSTANCES entry {item!r}: URL must start with http:// or https://")
        if name in instances:
            raise ConfigError(f"COMFYQ_INSTANCES names {name!r} twice")
        instances[name] = Instance(name, url)
    return instances


def default_data_dir() -> Path:
    """Return the directory for embedded defaults (database, outputs)."""
    return Path(os.environ.get("COMFYQ_DATA_DIR", Path.cwd() / "var")).resolve()


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    """Read a number from ``env``, or ``default`` when unset."""
    raw = env.get(key)
    try:
        return float(raw) if raw not in (None, "") else default
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not a number") from exc


class Config:
    """Settings for the API, workers and CLI, read once from the environment."""

    def __init__(self, env: Mapping[str, str] | None = None, **overrides: Any) -> None:
        env = os.environ if env is None else env
        data_dir = Path(env.get("COMFYQ_DATA_DIR") or default_data_dir())
        self.DATA_DIR = str(data_dir)
        self.SQLALCHEMY_DATABASE_URI = env.get("COMFYQ_DATABASE_URL") or f"sqlite:///{data_dir / 'comfyq.db'}"
        self.REDIS_URL = env.get("COMFYQ_REDIS_URL") or "redis://127.0.0.1:6379/0"
        self.BROKER_URL = env.get("COMFYQ_BROKER_URL") or self.REDIS_URL
        self.OUTPUT_DIR = env.get("COMFYQ_OUTPUT_DIR") or str(data_dir / "outputs")
        self.PUBLIC_URL = (env.get("COMFYQ_PUBLIC_URL") or "").rstrip("/")
        self.INSTANCES = parse_instances(env.get("COMFYQ_INSTANCES", ""))
        self.SOFT_TIME_LIMIT = _float(env, "COMFYQ_SOFT_TIME_LIMIT", 600.0)
        self.HARD_TIME_LIMIT = _float(env, "COMFYQ_HARD_TIME_LIMIT", 660.0)
        self.MAX_WORKFLOW_BYTES = int(_float(env, "COMFYQ_MAX_WORKFLOW_BYTES", 1_000_000))
        self.MAX_WORKFLOW_NODES = int(_float(env, "COMFYQ_MAX_WORKFLOW_NODES", 500))
        self.CATALOGUE_TTL = _float(env, "COMFYQ_CATALOGUE_TTL", 30.0)
        if self.SOFT_TIME_LIMIT >= self.HARD_TIME_LIMIT:
            raise ConfigError("COMFYQ_SOFT_TIME_LIMIT must be below COMFYQ_HARD_TIME_LIMIT")
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {}
        self.API_TITLE = "comfyq"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        self.OPENAPI_SWAGGER_UI_URL = None  # set below only when a local copy exists
        self.OPENAPI_REDOC_PATH = "redoc"
        self.MAX_CONTENT_LENGTH = self.MAX_WORKFLOW_BYTES + 64_000
        self.TESTING = False
        for key, value in overrides.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as a mapping for ``flask_app.config``."""
        return {key: value for key, value in vars(self).items() if key.isupper()}
