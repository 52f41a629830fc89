"""Whether an address a server binds to is reachable from other machines, and the credentials that guard it."""
from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from pathlib import Path

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(address: str) -> bool:
    """Tell whether binding to ``address`` reaches this machine alone ('' and 0.0.0.0 mean every interface)."""
    host = address.strip().strip("[]")
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it is loopback only if every address it names is
        try:
            found = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except OSError:
            return False
        return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


def stored_password(path: Path) -> str:
    """Return the password kept in ``path``, creating it (random, readable by its owner alone) on first use."""
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_urlsafe(18)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(fresh + "\n")
    return fresh
