"""The ``COMFYQ_WEBHOOK_ALLOW`` setting: the non-public addresses and hosts webhooks may call anyway.

An address is public unless it is loopback, private, link-local, multicast,
reserved, unspecified or shared (CGNAT), in IPv4 and IPv6 alike; an IPv6
address carrying an IPv4 one (mapped ``::ffff:a.b.c.d``, 6to4, NAT64) is judged
by the IPv4 one. ``comfyq.webhooks.addresses`` applies the allowlist to URLs.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable

from .checks import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class Allowlist:
    """Hostnames and networks that webhooks may call even though they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    def allows_host(self, host: str) -> bool:
        """Return whether ``host`` is named in the allowlist (its addresses are then not checked)."""
        return host.lower().rstrip(".") in self.hosts

    def allows(self, address: Address) -> bool:
        """Return whether ``address`` is public or in an allowlisted network."""
        candidates = {address, inner(address)}
        return any(a in net for a in candidates for net in self.networks if a.version == net.version) \
            or refusal(address) is None


def parse_allowlist(spec: str) -> Allowlist:
    """Parse ``127.0.0.1,10.0.0.0/8,hooks.internal``; raise ConfigError (a ValueError) naming a bad entry."""
    hosts, networks = set(), []
    for entry in (part.strip().lower() for part in spec.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]")))
            continue
        except ValueError as exc:
            if "/" in entry or ":" in entry or re.fullmatch(r"[0-9.]+", entry):
                raise ConfigError(f"COMFYQ_WEBHOOK_ALLOW entry {entry!r}: {exc} "
                                  "(write an address, a network like 10.0.0.0/8, or a hostname)") from None
        if not HOSTNAME.match(entry.rstrip(".")):
            raise ConfigError(f"COMFYQ_WEBHOOK_ALLOW entry {entry!r} is not a hostname, an address or a network")
        hosts.add(entry.rstrip("."))
    return Allowlist(frozenset(hosts), tuple(networks))


def inner(address: Address) -> Address:
    """Return the IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else ``address`` itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: Address) -> str | None:
    """Return why ``address`` is not public (None if it is)."""
    effective = inner(address)
    checks: list[tuple[Callable[[Any], bool], str]] = [
        (lambda a: a.is_unspecified, "unspecified"), (lambda a: a.is_loopback, "loopback"),
        (lambda a: a.is_link_local, "link-local (this includes cloud metadata services)"),
        (lambda a: a.is_multicast, "multicast"), (lambda a: a.is_reserved, "reserved"),
        (lambda a: a.is_private, "private"), (lambda a: getattr(a, "is_site_local", False), "site-local"),
        (lambda a: not a.is_global, "not publicly routable")]
    for check, why in checks:
        if check(effective):
            return why if effective is address else f"{why} (it carries the IPv4 address {effective})"
    return None
