"""SOCKS5 connections through python-socks, for SMTP probes sent from another IP.

A proxy a request named by host (`ProxyConfig.allow_private` false) is resolved by the
engine's own resolver (`resolved_proxy`, MXPROBE_DNS_NAMESERVERS, as MX hosts are), every
address it resolves to must be global unicast (`dns.is_public_address`, the MX addresses'
check), and python-socks is given the address that was checked: nothing resolves the name a
second time. Operators' proxies (`allow_private`) are trusted and connected to by name.

Every failure is one `errors.ProxyUnreachable` ("proxy unreachable"): a result must not tell a
closed port from an HTTP server or a SOCKS server that refused, or the proxy option is a port
scanner. What really happened goes to the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable

from python_socks import ProxyError, ProxyType
from python_socks.async_.asyncio import Proxy

from app.engine import errors
from app.engine.config import ProxyConfig
from app.engine.probes.dns import is_public_address

log = logging.getLogger(__name__)

PROXY_SHARE = 0.9
"""The proxy's share of the connect timeout. The session's own timeout covers the proxy, the
connection through it and the banner; the proxy gives up first, so its failure is its own."""


class _NotAllowed(Exception):
    """The proxy's host has an address a request's proxy may not have."""


async def open_socket(proxy: ProxyConfig, *, host: str, port: int, within: float) -> socket.socket:
    """A socket connected to host:port through the proxy, for the SMTP session's streams.

    Raises `errors.ProxyUnreachable` for anything that goes wrong on the way."""
    try:
        async with asyncio.timeout(within * PROXY_SHARE):
            address = proxy.host if proxy.allow_private else await _checked_address(proxy)
            client = Proxy(
                ProxyType.SOCKS5,
                address,
                proxy.port,
                username=proxy.username,
                password=proxy.password,
                rdns=False,
            )
            sock = await client.connect(dest_host=host, dest_port=port, timeout=within)
    # python-socks raises ProxyError, ProxyTimeoutError (a TimeoutError, so an OSError) and
    # ProxyConnectionError (an OSError); a host IDNA cannot encode is a UnicodeError (ValueError).
    except (_NotAllowed, ProxyError, OSError, ValueError) as exc:
        said = str(exc) or f"no connection within {within * PROXY_SHARE:g} s"
        log.warning(
            "proxy %s:%d gave no connection to %s:%d: %s: %s",
            proxy.host,
            proxy.port,
            host,
            port,
            type(exc).__name__,
            said,
        )
        raise errors.ProxyUnreachable() from exc
    sock.setblocking(False)
    return sock


async def _checked_address(proxy: ProxyConfig) -> str:
    """The address to connect to, once it is global unicast. The engine resolved the host
    with its own resolver before (`resolved_proxy`): a name still here did not resolve."""
    try:
        address = str(ipaddress.ip_address(proxy.host))
    except ValueError:
        raise _NotAllowed(f"{proxy.host} did not resolve; not connecting") from None
    if not is_public_address(address):
        raise _NotAllowed(
            f"{proxy.host} is not a public address; not connecting "
            "(set MXPROBE_ALLOW_PRIVATE_PROXY=true to allow)"
        )
    return address


async def resolved_proxy(
    proxy: ProxyConfig | None, resolve: Callable[[str], Awaitable[list[str]]]
) -> ProxyConfig | None:
    """A request's proxy named by host name, as an address the name resolves to (with the
    engine's resolver, as MX hosts are): its first, or the first that is not public, so
    that `open_socket` connects to a checked address or refuses. Operator proxies (allowed
    private) and literal addresses are left as given; a name that does not resolve too."""
    if proxy is None or proxy.allow_private:
        return proxy
    try:
        ipaddress.ip_address(proxy.host)
        return proxy
    except ValueError:
        pass
    try:
        found = await resolve(proxy.host)
    except errors.EngineError:
        found = []
    if not found:
        return proxy
    chosen = next((a for a in found if not is_public_address(a)), found[0])
    return dataclasses.replace(proxy, host=chosen)
