"""HTTP for webhooks: a session that connects to the one address that was checked, whatever DNS says later.

Between the check of a hostname's addresses and the connection, DNS could
answer differently (rebinding) and send the request to an internal address.
So the connection goes to the checked address, while the Host header, TLS SNI
and certificate check keep the URL's hostname. Proxies from the environment are
ignored for the same reason.
"""
from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


def _pinned(base: type[HTTPConnection], address: str) -> type[HTTPConnection]:
    """Return a subclass of ``base`` whose sockets connect to ``address``."""

    class Pinned(base):  # type: ignore[valid-type,misc]
        """A connection whose socket goes to a fixed address; everything else still names the URL's host."""

        def _new_conn(self) -> socket.socket:
            name, self._dns_host = self._dns_host, address
            try:
                return super()._new_conn()
            finally:
                self._dns_host = name

    return Pinned


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections all go to one address."""

    def __init__(self, address: str) -> None:
        self.address = address  # before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager with connection pools that connect to the address."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,),
                         {"ConnectionCls": _pinned(HTTPConnection, self.address)}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": _pinned(HTTPSConnection, self.address)}),
        }


def session(address: str | None) -> requests.Session:
    """Return a session without environment proxies, pinned to ``address`` unless it is None."""
    http = requests.Session()
    http.trust_env = False
    if address is not None:
        for prefix in ("http://", "https://"):
            http.mount(prefix, PinnedAdapter(address))
    return http
