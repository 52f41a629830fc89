"""The HTTP transport reads the environment's proxy settings once, as it is made."""
from __future__ import annotations

import pytest

from comfyq.comfy.http import HttpTransport


def test_environment_proxies_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = HttpTransport("http://comfy.example:8188", 1.0, 1.0, 0)
    monkeypatch.setenv("HTTP_PROXY", "http://elsewhere.example:3128")
    assert transport.session.proxies["http"] == "http://proxy.example:3128"
    assert transport.session.trust_env is False  # requests no longer reads os.environ at each request


def test_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert "http" not in HttpTransport("http://127.0.0.1:8188", 1.0, 1.0, 0).session.proxies
