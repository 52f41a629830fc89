"""Parsers of the settings that have a structure: instances and capabilities, role limits, node names."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Iterable

from .checks import ConfigError

INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CAPABILITY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
SHARED_QUEUE = "comfy"
CONTROL_QUEUE = "control"
WEBHOOK_QUEUE = "webhooks"
ROLES = ("admin", "service", "teacher", "student", "user")
# COMFYQ_ROLE_LIMITS and ``comfyq users limits`` name each limit by its short name.
LIMIT_NAMES = {"running": "max_running", "waiting": "max_waiting", "rate": "rate_per_minute", "weight": "weight"}
# Product backends submit for many people at once: no waiting cap or rate limit unless configured.
DEFAULT_ROLE_LIMITS = {"service": {"max_waiting": 0, "rate_per_minute": 0}}


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


def split(text: str, sep: str) -> list[str]:
    """Return the non-empty parts of ``text`` between ``sep``, stripped."""
    return [part.strip() for part in text.split(sep) if part.strip()]


def parse_instances(spec: str) -> dict[str, Instance]:
    """Parse ``gpu0=http://host:8188,gpu1=http://host:8189`` into instances."""
    instances: dict[str, Instance] = {}
    for item in split(spec, ","):
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
    for item in split(spec, ","):
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or name not in instances:
            raise ConfigError(f"COMFYQ_CAPABILITIES entry {item!r}: expected instance=cap+cap "
                              f"for a configured instance ({', '.join(instances) or 'none'})")
        for cap in split(values, "+"):
            if not CAPABILITY.match(cap):
                raise ConfigError(f"COMFYQ_CAPABILITIES entry {item!r}: {cap!r} is not a lowercase name")
            caps.setdefault(name, set()).add(cap)
    return {name: Instance(inst.name, inst.url, frozenset(caps.get(name, ()))) for name, inst in instances.items()}


def parse_role_limits(spec: str) -> dict[str, dict[str, int]]:
    """Parse ``student:running=1,waiting=20,rate=30;user:running=2`` into limits per role."""
    limits: dict[str, dict[str, int]] = {}
    for item in split(spec, ";"):
        role, sep, values = item.partition(":")
        role = role.strip()
        if not sep or role not in ROLES:
            raise ConfigError(f"COMFYQ_ROLE_LIMITS entry {item!r}: expected role:running=N,waiting=N,rate=N "
                              f"with a role among {', '.join(ROLES)}")
        for pair in split(values, ","):
            name, _, number = (part.strip() for part in pair.partition("="))
            if name not in LIMIT_NAMES or not number.isdigit() or (name in ("running", "weight") and int(number) < 1):
                raise ConfigError(f"COMFYQ_ROLE_LIMITS entry {item!r}: {pair!r} is not running=N or weight=N "
                                  "(N at least 1), waiting=N or rate=N (N a whole number, 0 for no limit)")
            limits.setdefault(role, {})[LIMIT_NAMES[name]] = int(number)
    return limits


def with_default_role_limits(configured: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Return ``configured`` role limits over the built-in ones (DEFAULT_ROLE_LIMITS)."""
    return {role: {**DEFAULT_ROLE_LIMITS.get(role, {}), **configured.get(role, {})}
            for role in {*DEFAULT_ROLE_LIMITS, *configured}}


def parse_names(spec: str) -> frozenset[str]:
    """Parse a comma-separated list of node class or role names ("-" or nothing: none)."""
    return frozenset(name for name in split(spec, ",") if name != "-")


def default_templates_dir() -> Path:
    """Return ./templates_wf if there is one, else the one beside the comfyq package (a checkout)."""
    here = Path.cwd() / "templates_wf"
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "templates_wf"


def default_data_dir() -> Path:
    """Return the directory for embedded defaults (database, outputs)."""
    return Path(os.environ.get("COMFYQ_DATA_DIR", Path.cwd() / "var")).resolve()
