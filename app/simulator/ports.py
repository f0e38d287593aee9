"""Binding the world's sockets: one TCP port shared by every MX address, and a DNS port."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence

__all__ = ["bind_dns", "bind_smtp"]

ATTEMPTS = 64


def bind_smtp(
    ips: Sequence[str], *, port: int | None, also_free_on: Sequence[str] = ()
) -> tuple[int, dict[str, socket.socket]]:
    """Bind a listening TCP socket on each IP, all on the same port.

    `port=None` picks a free one. `also_free_on` are addresses that must have nothing listening
    on that port (the MX hosts that refuse connections). Returns the port and the sockets.
    """
    for _ in range(1 if port else ATTEMPTS):
        sockets: dict[str, socket.socket] = {}
        try:
            chosen = port or 0
            for ip in ips:
                sockets[ip] = _tcp_socket(ip, chosen, listen=True)
                chosen = sockets[ip].getsockname()[1]
            for ip in also_free_on:
                probe = _tcp_socket(ip, chosen, listen=False)
                chosen = probe.getsockname()[1]
                probe.close()
            if not chosen:
                probe = _tcp_socket("127.0.0.1", 0, listen=False)
                chosen = probe.getsockname()[1]
                probe.close()
            return chosen, sockets
        except OSError as exc:
            for sock in sockets.values():
                sock.close()
            if port or exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no TCP port free on every simulated MX address")


def bind_dns(ip: str, *, port: int | None) -> tuple[int, socket.socket, socket.socket]:
    """Bind a UDP and a listening TCP socket on the same `ip` and port (`None`: a free one)."""
    for _ in range(1 if port else ATTEMPTS):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((ip, port or 0))
            chosen = udp.getsockname()[1]
            tcp = _tcp_socket(ip, chosen, listen=True)
        except OSError as exc:
            udp.close()
            if port or exc.errno != errno.EADDRINUSE:
                raise
            continue
        udp.setblocking(False)
        return chosen, udp, tcp
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {ip}")


def _tcp_socket(ip: str, port: int, *, listen: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Lets a fixed port be reused at once after a restart; on Linux it still fails when
        # something is listening on the same address and port (or on 0.0.0.0).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        if listen:
            sock.listen(128)
            sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
