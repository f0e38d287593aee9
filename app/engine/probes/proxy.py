"""SOCKS5 connections through python-socks, for SMTP probes sent from another IP."""

from __future__ import annotations

import socket

from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
from python_socks.async_.asyncio import Proxy

from app.engine import errors
from app.engine.config import ProxyConfig


async def open_socket(proxy: ProxyConfig, *, host: str, port: int, within: float) -> socket.socket:
    """A socket connected to host:port through the proxy, for the SMTP session's streams."""
    client = Proxy(
        ProxyType.SOCKS5,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password,
        rdns=False,
    )
    try:
        sock = await client.connect(dest_host=host, dest_port=port, timeout=within)
    except ProxyTimeoutError as exc:
        raise errors.SmtpTimeout(f"proxy timed out: {exc}", seconds=within) from exc
    except (ProxyConnectionError, ProxyError, OSError) as exc:
        raise errors.SmtpConnectError(f"proxy {proxy.host}:{proxy.port}: {exc}") from exc
    sock.setblocking(False)
    return sock
