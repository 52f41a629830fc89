"""Whether a bind address is beyond loopback, and the password kept for a server bound there."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from comfyq.config.exposure import is_loopback, stored_password


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.5", "::1", "[::1]", "localhost", " localhost "])
def test_loopback_addresses_reach_this_machine_alone(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["", "0.0.0.0", "::", "10.1.2.3", "192.168.0.7", "no-such-host.invalid"])
def test_every_interface_or_another_address_is_beyond_loopback(address: str) -> None:
    assert not is_loopback(address)


def test_a_password_is_made_once_readable_by_its_owner_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "flower-password"
    made = stored_password(path)
    assert len(made) >= 20 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stored_password(path) == made  # a restart keeps it
    path.write_text("chosen\n")
    assert stored_password(path) == "chosen"
