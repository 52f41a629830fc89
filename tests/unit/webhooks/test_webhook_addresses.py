"""The webhook allowlist: public addresses only by default, in every spelling; COMFYQ_WEBHOOK_ALLOW opens the rest."""
from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import pytest

from comfyq.config.allowlist import Allowlist, parse_allowlist, refusal
from comfyq.webhooks.addresses import Refused, check_literal, literal, resolve

NONE = Allowlist()


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450::1",
                                     "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None
    check_literal(address, NONE)


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("127.0.0.2", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("169.254.1.1", "link-local"),
    ("100.100.100.200", "not publicly routable"),  # shared address space (CGNAT), Alibaba's metadata too
    ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("239.1.2.3", "multicast"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"), ("192.0.2.1", "private"), ("198.18.0.1", "private"),
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("fd00:ec2::254", "private"),  # AWS's IPv6 metadata address
    ("ff02::1", "multicast"), ("fec0::1", "site-local"), ("2001:db8::1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.0.0.1", "private"),
    ("2002:7f00:1::", "loopback"), ("64:ff9b::a9fe:a9fe", "link-local"), ("::7f00:1", "reserved"),
])
def test_internal_addresses_are_refused_saying_why(address: str, why: str) -> None:
    assert why in (refusal(ipaddress.ip_address(address)) or "")
    with pytest.raises(Refused, match="webhooks only call public addresses"):
        check_literal(address, NONE)


@pytest.mark.parametrize("host", ["[::1]", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1", "017700000001", "127.1",
                                  "0xa9fea9fe", "[fe80::1%25eth0]"])
def test_every_spelling_of_an_internal_literal_is_caught(host: str) -> None:
    assert literal(host) is not None
    with pytest.raises(Refused):
        check_literal(host, NONE)


def test_hostnames_are_left_to_delivery_time() -> None:
    for host in ("example.com", "hooks.internal", "localhost", "cafe", "beef.cafe", "1.2.3.4.example.com"):
        assert literal(host) is None
        check_literal(host, NONE)


def test_the_allowlist_takes_hosts_addresses_and_networks() -> None:
    allow = parse_allowlist(" 127.0.0.1, 10.0.0.0/8,Hooks.Internal., ::1, fd00::/8 ,")
    assert allow.hosts == {"hooks.internal"}
    assert allow.allows_host("HOOKS.internal.") and not allow.allows_host("other.internal")
    for address in ("127.0.0.1", "10.200.0.7", "::1", "fd12::1", "::ffff:10.1.1.1", "::ffff:127.0.0.1", "8.8.8.8"):
        assert allow.allows(ipaddress.ip_address(address)), address
        check_literal(address, allow)
    for address in ("127.0.0.2", "169.254.169.254", "192.168.0.1", "fe80::1", "::ffff:127.0.0.2"):
        assert not allow.allows(ipaddress.ip_address(address)), address
        with pytest.raises(Refused):
            check_literal(address, allow)
    assert parse_allowlist("") == NONE


@pytest.mark.parametrize("spec, fragment", [
    ("10.1.2.3/8", "has host bits set"), ("300.1.1.1", "COMFYQ_WEBHOOK_ALLOW entry '300.1.1.1'"),
    ("10.0.0.0/33", "COMFYQ_WEBHOOK_ALLOW entry"), ("hooks internal", "is not a hostname"),
    ("http://hooks.internal", "COMFYQ_WEBHOOK_ALLOW entry"), ("*.internal", "is not a hostname"),
])
def test_a_bad_allowlist_entry_is_named(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("*", r"\*")):
        parse_allowlist(spec)


def fake_dns(table: dict[str, list[str]]) -> Any:
    """Return a getaddrinfo answering from ``table``."""
    def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in table[host]]
    return getaddrinfo


def test_a_hostname_is_allowed_only_if_every_address_it_resolves_to_is() -> None:
    dns = fake_dns({"public.example": ["93.184.216.34", "2606:2800:220:1::1"],
                    "mixed.example": ["93.184.216.34", "10.0.0.5"], "metadata.example": ["169.254.169.254"],
                    "mapped.example": ["::ffff:127.0.0.1"], "local.example": ["127.0.0.1"]})
    assert resolve("public.example", 443, NONE, dns) == "93.184.216.34"  # the checked address is the one used
    for host, bad in (("mixed.example", "10.0.0.5"), ("metadata.example", "169.254.169.254"),
                      ("mapped.example", "::ffff:127.0.0.1"), ("local.example", "127.0.0.1")):
        with pytest.raises(Refused, match=re.escape(f"{host} resolves to {ipaddress.ip_address(bad)}")):
            resolve(host, 443, NONE, dns)
    assert resolve("local.example", 80, parse_allowlist("127.0.0.1"), dns) == "127.0.0.1"
    assert resolve("mixed.example", 80, parse_allowlist("10.0.0.0/8"), dns) == "93.184.216.34"
    with pytest.raises(socket.gaierror):
        resolve("nowhere.example", 80, NONE, dns)


def test_an_allowlisted_hostname_is_not_resolved_and_literals_are_not_looked_up() -> None:
    def no_dns(*_: Any, **__: Any) -> list[Any]:
        raise AssertionError("DNS must not be asked")
    assert resolve("hooks.internal", 80, parse_allowlist("hooks.internal"), no_dns) is None
    assert resolve("8.8.8.8", 80, NONE, no_dns) == "8.8.8.8"
    assert resolve("[2606:4700::1111]", 80, NONE, no_dns) == "2606:4700::1111"
    with pytest.raises(Refused):
        resolve("169.254.169.254", 80, NONE, no_dns)
