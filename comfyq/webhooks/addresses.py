"""Which addresses webhooks may call: public ones, and those ``COMFYQ_WEBHOOK_ALLOW`` names.

Refused unless allowlisted: loopback, private, link-local (the cloud metadata
service at 169.254.169.254 among them), multicast, reserved, unspecified and
shared (CGNAT) addresses, in IPv4 and IPv6 alike; an IPv6 address carrying an
IPv4 one (mapped ``::ffff:a.b.c.d``, 6to4, NAT64) is judged by the IPv4 one.
An IP literal is judged when the URL is given; a hostname when a delivery is
sent, by every address it resolves to, and the connection then goes to the
address that was checked, so a second DNS answer cannot point it elsewhere.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any, Callable

# The allowlist is a setting (comfyq.config.allowlist); parse_allowlist stays importable from here.
from ..config.allowlist import Address, Allowlist, parse_allowlist, refusal  # noqa: F401

LEGACY_IPV4 = re.compile(r"^[0-9a-fx.]+$")  # 2130706433, 0x7f.1, 017700000001: what inet_aton still reads


class Refused(ValueError):
    """The address or host is not one webhooks may call."""


def literal(host: str) -> Address | None:
    """Return the address a URL host names literally (also in IPv4's legacy numeric forms), else None."""
    host = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_literal(host: str, allow: Allowlist) -> None:
    """Raise Refused if ``host`` is an IP literal that webhooks may not call; hostnames pass (checked later)."""
    address = literal(host)
    if address is not None:
        _check(address, allow)


def _check(address: Address, allow: Allowlist, host: str | None = None) -> None:
    """Raise Refused if webhooks may not call ``address`` (what ``host``, if given, resolved to)."""
    if not allow.allows(address):
        said = f"{host} resolves to {address}, which is" if host else f"{address} is"
        raise Refused(f"{said} {refusal(address)}; webhooks only call public addresses "
                      "(or those an operator allows with COMFYQ_WEBHOOK_ALLOW)")


def resolve(host: str, port: int, allow: Allowlist,
            getaddrinfo: Callable[..., list[Any]] = socket.getaddrinfo) -> str | None:
    """Return the checked address to connect to (None: an allowlisted hostname, resolved as usual).

    Raises Refused if any address ``host`` resolves to may not be called, and
    ``socket.gaierror`` if it does not resolve at all (worth retrying).
    """
    if allow.allows_host(host):
        return None
    address = literal(host)
    if address is not None:
        _check(address, allow)
        return str(address)
    found: list[Address] = []
    for *_, sockaddr in getaddrinfo(host, port, type=socket.SOCK_STREAM):
        resolved = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        _check(resolved, allow, host)
        if resolved not in found:
            found.append(resolved)
    if not found:
        raise socket.gaierror(f"{host} resolved to no address")
    return str(found[0])
