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
from dataclasses import dataclass
from typing import Any, Callable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
LEGACY_IPV4 = re.compile(r"^[0-9a-fx.]+$")  # 2130706433, 0x7f.1, 017700000001: what inet_aton still reads


class Refused(ValueError):
    """The address or host is not one webhooks may call."""


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
    """Parse ``127.0.0.1,10.0.0.0/8,hooks.internal``; raise ValueError naming a bad entry."""
    hosts, networks = set(), []
    for entry in (part.strip().lower() for part in spec.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]")))
            continue
        except ValueError as exc:
            if "/" in entry or ":" in entry or re.fullmatch(r"[0-9.]+", entry):
                raise ValueError(f"COMFYQ_WEBHOOK_ALLOW entry {entry!r}: {exc} "
                                 "(write an address, a network like 10.0.0.0/8, or a hostname)") from None
        if not HOSTNAME.match(entry.rstrip(".")):
            raise ValueError(f"COMFYQ_WEBHOOK_ALLOW entry {entry!r} is not a hostname, an address or a network")
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
