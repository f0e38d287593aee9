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
        # IPv6 forms that carry an IPv4 address are judged by that address
        ("::ffff:8.8.8.8", True),
        ("::ffff:10.0.0.1", False),
        ("::ffff:100.64.0.1", False),  # CGNAT, mapped: `is_global` says True
        ("::ffff:224.0.0.1", False),  # multicast, mapped: `is_global` says True
        ("::ffff:169.254.169.254", False),
        ("::ffff:0.0.0.0", False),
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1: `is_global` says True
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::a00:1", False),  # RFC 8215 local-use NAT64
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1: `is_global` says True
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("::127.0.0.1", False),  # deprecated IPv4-compatible: `is_global` says True
        ("::8.8.8.8", False),
        ("fec0::1", False),  # deprecated site-local: `is_global` says True
        ("2001::1", False),  # Teredo
        ("2001:db8::1", False),  # documentation
        ("100.64.0.0", False),
        ("100.127.255.255", False),
        ("0.1.2.3", False),
        ("240.0.0.1", False),
        ("198.18.0.1", False),  # benchmarking
        ("ff02::1", False),
        ("localhost", False),
        ("", False),
    ],
)
def test_only_global_unicast_is_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public
