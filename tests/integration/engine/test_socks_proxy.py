"""Probing through a real SOCKS5 proxy (microsocks, from Debian's packages, on loopback): the
same verdicts as direct, plain and after STARTTLS, pipelined, on every event loop. A proxy
that gives no connection is one message, `proxy unreachable`, whatever happened (the detail
is logged), and a request's proxy must resolve to public addresses only."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from app.engine import CheckRequest, ProxyConfig
from app.simulator import World
from tests.fixtures.socks import free_port, http_server, microsocks, silent_server
from tests.integration.engine.test_check_against_world import verifier_for

ADDRESSES = {
    "alice@normal.test": "safe",  # STARTTLS offered
    "nobody@normal.test": "invalid",
    "alice@full.test": "risky",
    "anyone@catchall.test": "risky",
}
USER, PASSWORD = "probe", "s3cret"
PROXY_LOG = "app.engine.probes.proxy"


@pytest.fixture(scope="module")
def socks_proxy() -> Iterator[ProxyConfig]:
    with microsocks(username=USER, password=PASSWORD) as socks:
        # an operator's proxy: trusted, though on loopback
        yield ProxyConfig(
            host=socks.host,
            port=socks.port,
            username=USER,
            password=PASSWORD,
            allow_private=True,
        )


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
    wrong = dataclasses.replace(socks_proxy, password="no")
    async with verifier_for(world) as verifier:
        output = await verifier.check(CheckRequest(to_email="nobody@normal.test", proxy=wrong))

    assert output.is_reachable == "unknown"
    assert output.to_json()["smtp"]["error"]["message"] == "proxy unreachable"


def _without_times(output: dict[str, Any]) -> str:
    debug = {
        k: v for k, v in output["debug"].items() if k not in ("start_time", "end_time", "duration")
    }
    return json.dumps({**output, "debug": debug})


async def test_every_proxy_failure_reads_the_same_and_the_log_says_which(
    world: World, socks_proxy: ProxyConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """A closed port, an HTTP server's port, a SOCKS server refusing our credentials and a
    port that never answers: byte-identical results (without the timings), so the proxy
    option tells a client nothing about what listens where. The log tells the operator."""
    async with AsyncExitStack() as stack:
        http_port = await stack.enter_async_context(http_server())
        silent_port = await stack.enter_async_context(silent_server())
        cases = {
            "closed": ProxyConfig(host="127.0.0.1", port=free_port(), allow_private=True),
            "http": ProxyConfig(host="127.0.0.1", port=http_port, allow_private=True),
            "socks refusing": dataclasses.replace(socks_proxy, password="wrong"),
            "silent": ProxyConfig(host="127.0.0.1", port=silent_port, allow_private=True),
        }
        outputs: dict[str, str] = {}
        details: dict[str, str] = {}
        async with verifier_for(world, connect_timeout=1.0) as verifier:
            for case, proxy in cases.items():
                caplog.clear()
                with caplog.at_level(logging.WARNING, logger=PROXY_LOG):
                    checked = await verifier.check(
                        CheckRequest(to_email="alice@normal.test", proxy=proxy)
                    )
                outputs[case] = _without_times(checked.to_json())
                details[case] = " ".join(r.getMessage() for r in caplog.records)

    assert len(set(outputs.values())) == 1, outputs
    output = json.loads(outputs["closed"])
    assert output["is_reachable"] == "unknown"
    assert output["smtp"] == {"error": {"type": "AsyncSmtpError", "message": "proxy unreachable"}}
    assert output["debug"]["probe"]["message"] == "proxy unreachable"
    assert "proxy" not in output["debug"]["smtp"]["verif_method"].get("verif_method", {})
    assert "Errno 111" in details["closed"]  # ECONNREFUSED
    assert "SOCKS version" in details["http"]
    assert "authentication failure" in details["socks refusing"]
    assert "TimeoutError: no connection within 0.9 s" in details["silent"]
    assert all("wrong" not in detail for detail in details.values())  # no credentials logged


@pytest.fixture
async def open_proxy() -> AsyncIterator[int]:
    with microsocks() as socks:
        yield socks.port


@pytest.mark.parametrize(
    ("host", "logged"),
    [
        ("127.0.0.1", "is not a public address"),
        ("::ffff:127.0.0.1", "is not a public address"),
        # resolved by the engine's resolver (the world's DNS: 127.0.0.10), not the system's
        ("mx.normal.test", "is not a public address"),
        # the world's DNS knows neither; the system's resolver and /etc/hosts are not asked
        ("localhost", "did not resolve"),
        ("127.1", "did not resolve"),
    ],
)
async def test_a_requests_proxy_on_a_private_address_is_never_connected_to(
    world: World, open_proxy: int, host: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A request's proxy (not `allow_private`) whose host is, or resolves to, loopback, or
    does not resolve: the same `proxy unreachable`, and no connection to the proxy."""
    proxy = ProxyConfig(host=host, port=open_proxy)
    async with verifier_for(world) as verifier:
        with caplog.at_level(logging.WARNING, logger=PROXY_LOG):
            output = (
                await verifier.check(CheckRequest(to_email="alice@normal.test", proxy=proxy))
            ).to_json()

    assert output["is_reachable"] == "unknown"
    assert output["smtp"]["error"]["message"] == "proxy unreachable"
    assert logged in caplog.text


async def test_the_same_proxy_allowed_private_is_used(world: World, open_proxy: int) -> None:
    """MXPROBE_ALLOW_PRIVATE_PROXY: the request's proxy on loopback is connected to, by the
    address its name resolved to."""
    proxy = ProxyConfig(host="127.0.0.1", port=open_proxy, allow_private=True)
    async with verifier_for(world) as verifier:
        output = await verifier.check(CheckRequest(to_email="alice@normal.test", proxy=proxy))

    assert output.is_reachable == "safe"
