"""`is_public_address`: the one check of MX and request-proxy addresses (global unicast only)."""

from __future__ import annotations

import pytest

from app.engine.probes.dns import is_public_address


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.1", False),  # multicast: `is_global` alone says True
        ("239.255.255.250", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fe80::1%lo", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("ff02::1", False),
        ("localhost", False),
        ("", False),
    ],
)
def test_only_global_unicast_is_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public
