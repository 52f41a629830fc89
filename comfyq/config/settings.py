"""Configuration: one Config class reading COMFYQ_* environment variables."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from itertools import combinations
from typing import Any, Iterable, Mapping

from .checks import ConfigError, check
from .allowlist import parse_allowlist

INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CAPABILITY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
SHARED_QUEUE = "comfy"
ROLES = ("admin", "service", "teacher", "student", "user")
# COMFYQ_ROLE_LIMITS and ``comfyq users limits`` name each limit by its short name.
LIMIT_NAMES = {"running": "max_running", "waiting": "max_waiting", "rate": "rate_per_minute"}
# Product backends submit for many people at once: no waiting cap or rate limit unless configured.
DEFAULT_ROLE_LIMITS = {"service": {"max_waiting": 0, "rate_per_minute": 0}}
CONTROL_QUEUE = "control"
WEBHOOK_QUEUE = "webhooks"
# Nodes that run arbitrary code or write arbitrary files; raw workflows may not use them.
DEFAULT_BLOCKLIST = (
    "ExecutePython", "PythonScript", "RunPythonCode", "Exec Python Code", "KY_Eval_Python", "Eval",
    "ShellCommand", "RunCommand", "Execute Command", "SaveText|pysssss", "Save Text File",
    "Text to File", "WriteToFile", "SaveFile", "LoadFileFromPath",
)


@dataclass(frozen=True)
class Instance:
    """One ComfyUI server that exactly one worker owns."""

    name: str
    url: str
    capabilities: frozenset[str] = frozenset()

    @property
    def queue(self) -> str:
        """Return the name of this instance's own Celery queue."""
        return f"{SHARED_QUEUE}.{self.name}"

    def queues(self) -> list[str]:
        """Return every queue this instance's worker consumes besides the shared one."""
        caps = sorted(self.capabilities)
        subsets = [combo for n in range(1, len(caps) + 1) for combo in combinations(caps, n)]
        return [self.queue, *(capability_queue(combo) for combo in subsets)]


def capability_queue(capabilities: Iterable[str]) -> str:
    """Return the queue of jobs that need every one of ``capabilities``."""
    return f"{SHARED_QUEUE}.need.{'+'.join(sorted(capabilities))}"


def _split(text: str, sep: str) -> list[str]:
    """Return the non-empty parts of ``text`` between ``sep``, stripped."""
    return [part.strip() for part in text.split(sep) if part.strip()]


def parse_instances(spec: str) -> dict[str, Instance]:
    """Parse ``gpu0=http://host:8188,gpu1=http://host:8189`` into instances."""
    instances: dict[str, Instance] = {}
    for item in _split(spec, ","):
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


def parse_capabilities(spec: str, instances: dict[str, Instance]) -> dict[str, Instance]:
    """Apply ``gpu1=sdxl+flux,gpu0=sd15`` to ``instances``; return the updated mapping."""
    caps: dict[str, set[str]] = {}
    for item in _split(spec, ","):
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or name not in instances:
            raise ConfigError(f"COMFYQ_CAPABILITIES entry {item!r}: expected instance=cap+cap "
                              f"for a configured instance ({', '.join(instances) or 'none'})")
        for cap in _split(values, "+"):
            if not CAPABILITY.match(cap):
                raise ConfigError(f"COMFYQ_CAPABILITIES entry {item!r}: {cap!r} is not a lowercase name")
            caps.setdefault(name, set()).add(cap)
    return {name: Instance(inst.name, inst.url, frozenset(caps.get(name, ()))) for name, inst in instances.items()}


def default_templates_dir() -> Path:
    """Return ./templates_wf if there is one, else the one beside the comfyq package (a checkout)."""
    here = Path.cwd() / "templates_wf"
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "templates_wf"


def default_data_dir() -> Path:
    """Return the directory for embedded defaults (database, outputs)."""
    return Path(os.environ.get("COMFYQ_DATA_DIR", Path.cwd() / "var")).resolve()


def _names(env: Mapping[str, str], key: str, default: Iterable[str]) -> frozenset[str]:
    """Read a comma-separated list of node class names ("-" for none)."""
    raw = env.get(key)
    if raw is None:
        return frozenset(default)
    return frozenset(name for name in _split(raw, ",") if name != "-")


def parse_role_limits(spec: str) -> dict[str, dict[str, int]]:
    """Parse ``student:running=1,waiting=20,rate=30;user:running=2`` into limits per role."""
    limits: dict[str, dict[str, int]] = {}
    for item in _split(spec, ";"):
        role, sep, values = item.partition(":")
        role = role.strip()
        if not sep or role not in ROLES:
            raise ConfigError(f"COMFYQ_ROLE_LIMITS entry {item!r}: expected role:running=N,waiting=N,rate=N "
                              f"with a role among {', '.join(ROLES)}")
        for pair in _split(values, ","):
            name, _, number = (part.strip() for part in pair.partition("="))
            if name not in LIMIT_NAMES or not number.isdigit() or (name == "running" and int(number) < 1):
                raise ConfigError(f"COMFYQ_ROLE_LIMITS entry {item!r}: {pair!r} is not running=N (N at least 1), "
                                  "waiting=N or rate=N (N a whole number, 0 for no limit)")
            limits.setdefault(role, {})[LIMIT_NAMES[name]] = int(number)
    return limits


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
        self.INSTANCES = parse_capabilities(env.get("COMFYQ_CAPABILITIES", ""),
                                            parse_instances(env.get("COMFYQ_INSTANCES", "")))
        self.TEMPLATES_DIR = env.get("COMFYQ_TEMPLATES_DIR") or str(default_templates_dir())
        self.INPUT_DIR = env.get("COMFYQ_INPUT_DIR") or str(data_dir / "inputs")
        # Outputs and input images: a local directory each, or one S3-compatible bucket.
        self.STORAGE = env.get("COMFYQ_STORAGE") or "local"
        self.S3_BUCKET = env.get("COMFYQ_S3_BUCKET") or ""
        self.S3_PREFIX = env.get("COMFYQ_S3_PREFIX") or ""
        self.S3_ENDPOINT_URL = env.get("COMFYQ_S3_ENDPOINT_URL") or None  # None: AWS itself
        self.S3_REGION = env.get("COMFYQ_S3_REGION") or "us-east-1"
        self.S3_URL_EXPIRES = int(_float(env, "COMFYQ_S3_URL_EXPIRES", 3600))
        # Outputs older than this many hours are deleted (0: kept for ever), checked every RETENTION_INTERVAL s.
        self.OUTPUT_RETENTION_HOURS = _float(env, "COMFYQ_OUTPUT_RETENTION_HOURS", 0.0)
        self.RETENTION_INTERVAL = _float(env, "COMFYQ_RETENTION_INTERVAL", 600.0)
        # Webhooks: internal addresses they may call anyway, and how long and how often a failing one is retried.
        try:
            self.WEBHOOK_ALLOW = parse_allowlist(env.get("COMFYQ_WEBHOOK_ALLOW", ""))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.WEBHOOK_TIMEOUT = _float(env, "COMFYQ_WEBHOOK_TIMEOUT", 10.0)
        self.WEBHOOK_BACKOFF = _float(env, "COMFYQ_WEBHOOK_BACKOFF", 5.0)
        self.WEBHOOK_BACKOFF_MAX = _float(env, "COMFYQ_WEBHOOK_BACKOFF_MAX", 3600.0)
        self.WEBHOOK_RETRY_FOR = _float(env, "COMFYQ_WEBHOOK_RETRY_FOR", 86400.0)
        self.WEBHOOK_CONCURRENCY = int(_float(env, "COMFYQ_WEBHOOK_CONCURRENCY", 8))
        self.WEBHOOK_PROGRESS_EVERY = _float(env, "COMFYQ_WEBHOOK_PROGRESS_EVERY", 5.0)
        # An exported /object_info (custom nodes) that templates are checked against, over the simulator's.
        self.TEMPLATE_CATALOGUE = env.get("COMFYQ_TEMPLATE_CATALOGUE") or None
        self.MAX_OUTPUT_PIXELS = _float(env, "COMFYQ_MAX_OUTPUT_PIXELS", 4096 * 4096)
        self.SOFT_TIME_LIMIT = _float(env, "COMFYQ_SOFT_TIME_LIMIT", 600.0)
        self.TIME_LIMIT_GRACE = _float(env, "COMFYQ_TIME_LIMIT_GRACE", 60.0)
        self.MAX_TIME_LIMIT = _float(env, "COMFYQ_MAX_TIME_LIMIT", 3600.0)
        self.MAX_BODY_BYTES = int(_float(env, "COMFYQ_MAX_BODY_BYTES", 16_000_000))
        # A client may pause this long while sending a request's headers or body, and take BODY_DEADLINE in all.
        self.READ_TIMEOUT = _float(env, "COMFYQ_READ_TIMEOUT", 10.0)
        self.BODY_DEADLINE = _float(env, "COMFYQ_BODY_DEADLINE", 120.0)
        self.MAX_WORKFLOW_NODES = int(_float(env, "COMFYQ_MAX_WORKFLOW_NODES", 500))
        self.MAX_BATCH_JOBS = int(_float(env, "COMFYQ_MAX_BATCH_JOBS", 100))
        self.MAX_UPLOAD_BYTES = int(_float(env, "COMFYQ_MAX_UPLOAD_BYTES", 10_000_000))
        self.MAX_UPLOAD_PIXELS = int(_float(env, "COMFYQ_MAX_UPLOAD_PIXELS", 4096 * 4096))
        self.CATALOGUE_TTL = _float(env, "COMFYQ_CATALOGUE_TTL", 30.0)
        self.NODE_BLOCKLIST = _names(env, "COMFYQ_NODE_BLOCKLIST", DEFAULT_BLOCKLIST)
        self.NODE_ALLOWLIST = _names(env, "COMFYQ_NODE_ALLOWLIST", ())
        # Roles that may send raw workflows (teachers and users also need the expert level).
        self.RAW_WORKFLOW_ROLES = _names(env, "COMFYQ_RAW_WORKFLOW_ROLES", ("admin", "service", "teacher", "user"))
        # Accounts: raw workflows have no cost formula; free roles are never charged.
        self.RAW_JOB_COST = int(_float(env, "COMFYQ_RAW_JOB_COST", 1))
        self.FREE_ROLES = _names(env, "COMFYQ_FREE_ROLES", ("admin", "service"))
        # Fair share: by default one user may fill every GPU, and a newcomer waits at most one job per GPU.
        gpus = max(1, len(self.INSTANCES))
        self.MAX_RUNNING_PER_USER = int(_float(env, "COMFYQ_MAX_RUNNING_PER_USER", gpus))
        self.MAX_WAITING_PER_USER = int(_float(env, "COMFYQ_MAX_WAITING_PER_USER", 1000))
        self.SUBMIT_RATE_PER_MINUTE = int(_float(env, "COMFYQ_SUBMIT_RATE_PER_MINUTE", 600))
        self.MAX_ADMITTED = int(_float(env, "COMFYQ_MAX_ADMITTED", max(10, gpus)))  # 0: no global cap
        configured = parse_role_limits(env.get("COMFYQ_ROLE_LIMITS", ""))
        self.ROLE_LIMITS = {role: {**DEFAULT_ROLE_LIMITS.get(role, {}), **configured.get(role, {})}
                            for role in {*DEFAULT_ROLE_LIMITS, *configured}}
        # Reliability: how long a soft-limited prompt may take to stop before its instance counts as stuck.
        self.INTERRUPT_GRACE = _float(env, "COMFYQ_INTERRUPT_GRACE", 10.0)
        # A live worker renews its messages every second, so this only bounds how late a crash is noticed.
        self.VISIBILITY_TIMEOUT = _float(env, "COMFYQ_VISIBILITY_TIMEOUT", 8.0)
        self.HEALTH_INTERVAL = _float(env, "COMFYQ_HEALTH_INTERVAL", 1.0)
        self.HEALTH_FAILURES = int(_float(env, "COMFYQ_HEALTH_FAILURES", 2))
        self.MAX_ATTEMPTS = int(_float(env, "COMFYQ_MAX_ATTEMPTS", 3))
        self.DRAIN_TIMEOUT = _float(env, "COMFYQ_DRAIN_TIMEOUT", 60.0)
        self.RECONCILE_INTERVAL = _float(env, "COMFYQ_RECONCILE_INTERVAL", 10.0)
        self.RECONCILE_GRACE = _float(env, "COMFYQ_RECONCILE_GRACE", 30.0)
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

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as a mapping for ``flask_app.config``."""
        return {key: value for key, value in vars(self).items() if key.isupper()}
