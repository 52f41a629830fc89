"""Cached node catalogues of the instances, as published by their workers.

Workers summarise ``/object_info`` into ``{class_type: [output types, is output node]}``
and store it in Redis; the API reads it (with a short in-process cache) and never
asks ComfyUI itself on the request path.
"""
from __future__ import annotations

import json
import time
from typing import Any

import redis

KEY = "comfyq:catalogue:{}"
Catalogue = dict[str, tuple[list[str], bool]]

_cache: dict[str, tuple[float, Catalogue | None]] = {}


def summarise(object_info: dict[str, Any]) -> Catalogue:
    """Reduce a full ``/object_info`` answer to what validation needs."""
    return {name: (list(info.get("output") or []), bool(info.get("output_node")))
            for name, info in object_info.items() if isinstance(info, dict)}


def publish(r: redis.Redis, instance: str, object_info: dict[str, Any]) -> None:
    """Store an instance's catalogue summary for the API."""
    r.set(KEY.format(instance), json.dumps(summarise(object_info)))


def load(r: redis.Redis, instance: str, ttl: float = 30.0) -> Catalogue | None:
    """Return an instance's catalogue, or None when no worker has published one."""
    now = time.monotonic()
    hit = _cache.get(instance)
    if hit and now - hit[0] < ttl:
        return hit[1]
    raw = r.get(KEY.format(instance))
    catalogue = {k: (v[0], v[1]) for k, v in json.loads(raw).items()} if raw else None
    _cache[instance] = (now, catalogue)
    return catalogue
