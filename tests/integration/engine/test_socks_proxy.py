"""Probing through a real SOCKS5 proxy (microsocks, from Debian's packages, on loopback): the
same verdicts as direct, plain and after STARTTLS, pipelined, on every event loop."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from app.engine import CheckRequest, ProxyConfig
from app.simulator import World
from tests.integration.engine.test_check_against_world import verifier_for

ADDRESSES = {
    "alice@normal.test": "safe",  # STARTTLS offered
    "nobody@normal.test": "invalid",
    "alice@full.test": "risky",
    "anyone@catchall.test": "risky",
}
USER, PASSWORD = "probe", "s3cret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def socks_proxy() -> Iterator[ProxyConfig]:
    binary = shutil.which("microsocks")
    assert binary, "microsocks is missing: `make test` installs it (apt-get install microsocks)"
    port = _free_port()
    process = subprocess.Popen(
        [binary, "-i", "127.0.0.1", "-p", str(port), "-u", USER, "-P", PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "microsocks did not start"
                time.sleep(0.05)
        yield ProxyConfig(host="127.0.0.1", port=port, username=USER, password=PASSWORD)
    finally:
        process.terminate()
        process.wait(timeout=5)


async def test_verdicts_through_a_socks5_proxy_are_the_direct_ones(
    world: World, socks_proxy: ProxyConfig
) -> None:
    async with verifier_for(world, session_idle_timeout=2.0) as verifier:
        direct = {
            a: (await verifier.check(CheckRequest(to_email=a))).is_reachable for a in ADDRESSES
        }
    async with verifier_for(world, session_idle_timeout=2.0) as verifier:
        proxied = {
            a: (await verifier.check(CheckRequest(to_email=a, proxy=socks_proxy))).to_json()
            for a in ADDRESSES
        }

    assert direct == ADDRESSES
    assert {a: out["is_reachable"] for a, out in proxied.items()} == ADDRESSES
    method = proxied["alice@normal.test"]["debug"]["smtp"]["verif_method"]["verif_method"]
    assert method["proxy"] == {"host": "127.0.0.1", "port": socks_proxy.port}  # no credentials


async def test_a_proxy_refusing_our_credentials_is_unknown_not_invalid(
    world: World, socks_proxy: ProxyConfig
) -> None:
    wrong = ProxyConfig(host="127.0.0.1", port=socks_proxy.port, username=USER, password="no")
    async with verifier_for(world) as verifier:
        output = await verifier.check(CheckRequest(to_email="nobody@normal.test", proxy=wrong))

    assert output.is_reachable == "unknown"
