"""The simulated DNS server: one `Zone` served over UDP and TCP from the world's event loop.

A reply the zone holds back (a name's latency) is sent that much later, without holding up
the replies to other queries."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import cast

from app.simulator.zone import Reply, Zone

__all__ = ["DnsServer"]


class _Outbox:
    """Sends each reply after its delay; `cancel()` drops those not sent yet."""

    def __init__(self) -> None:
        self._held: set[asyncio.TimerHandle] = set()

    def send(self, reply: Reply, write: Callable[[bytes], None]) -> None:
        if reply.delay <= 0:
            write(reply.packed)
            return

        def release() -> None:
            self._held.discard(handle)
            write(reply.packed)

        handle = asyncio.get_running_loop().call_later(reply.delay, release)
        self._held.add(handle)

    def cancel(self) -> None:
        for handle in self._held:
            handle.cancel()
        self._held.clear()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone, outbox: _Outbox) -> None:
        self.zone = zone
        self.outbox = outbox
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        reply = self.zone.respond(data, udp=True)
        if reply is not None:
            self.outbox.send(reply, lambda packed: self._send(packed, addr))

    def _send(self, packed: bytes, addr: tuple[str | bytes, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(packed, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable from a client that went away: nothing to do."""


class _Tcp(asyncio.Protocol):
    """RFC 7766 framing: each message is preceded by its length in two bytes."""

    def __init__(self, zone: Zone, live: set[_Tcp], outbox: _Outbox) -> None:
        self.zone = zone
        self.live = live
        self.outbox = outbox
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 2:
            (length,) = struct.unpack("!H", self.buffer[:2])
            if len(self.buffer) < 2 + length:
                return
            message, self.buffer = self.buffer[2 : 2 + length], self.buffer[2 + length :]
            reply = self.zone.respond(message, udp=False)
            if reply is not None:
                self.outbox.send(reply, self._send)

    def _send(self, packed: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(struct.pack("!H", len(packed)) + packed)


class DnsServer:
    """Serves `zone` on already bound UDP and TCP sockets (same address and port)."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._live: set[_Tcp] = set()
        self._outbox = _Outbox()

    async def start(self, *, udp: socket.socket, tcp: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self.zone, self._outbox), sock=udp
        )
        self._tcp = await loop.create_server(
            lambda: _Tcp(self.zone, self._live, self._outbox), sock=tcp
        )

    async def close(self) -> None:
        self._outbox.cancel()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for connection in list(self._live):
                if connection.transport is not None:
                    connection.transport.abort()
            await self._tcp.wait_closed()
            self._tcp = None
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run
