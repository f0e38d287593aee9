"""A fake MX server: aiosmtpd's SMTP protocol, bent by a `Behaviour`.

`SimulatedSMTP` adds what a real MX does to a verifier: latency per round trip (the replies to
pipelined commands share one), a tarpit before the banner, a connection limit, a budget of
unknown recipients, STARTTLS, and the `rcpt_policy` replies. Every command line is recorded as
received. DATA and BDAT are a tripwire: they are recorded and refused, and the tests fail on
them.

Every reply leaves through `SimulatedSMTP.push` (aiosmtpd's one way out), which also decides
how its bytes are cut into writes, so TCP segments (`Behaviour.segments`, `slow_banner`): a
client must read each reply whole, in order, however it arrives.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

from aiosmtpd.smtp import SMTP

from app.simulator.behaviours import Behaviour
from app.simulator.rcpt_policy import (
    TOO_MANY_CONNECTIONS,
    TOO_MANY_INVALID,
    Book,
    Greylist,
    decide_rcpt,
)
from app.simulator.recorder import Recorder

__all__ = ["DATA_FORBIDDEN", "MxServer", "SimulatedSMTP"]

DATA_FORBIDDEN = "554 5.7.0 DATA is forbidden in the simulated world"
IDENT = "ESMTP mxprobe simulator"
# aiosmtpd's own require_starttls reply has no enhanced status code; real servers send one.
_BARE_530 = "530 Must issue a STARTTLS command first"
_ENHANCED_530 = "530 5.7.0 Must issue a STARTTLS command first"
# Replies after which the server hangs up: never held back in a flight.
_CLOSING_CODES = frozenset({"221", "421"})
_BANNER_FILLER = "220-This is a simulated mail server: no message is ever delivered"


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off, so that every write leaves at once as its own segment.

    asyncio does it only for sockets whose `proto` is IPPROTO_TCP, and the world's listening
    sockets (so the accepted ones) are made with proto 0; with Nagle on, a write that follows
    one not yet acknowledged waits for the peer's (delayed) ACK and may be coalesced.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MxServer:
    """One fake MX host: its behaviour, the domains it serves, and its listening socket."""

    def __init__(
        self,
        host: str,
        *,
        behaviour: Behaviour,
        books: Mapping[str, Book],
        recorder: Recorder,
        greylist: Greylist,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        self.host = host
        self.behaviour = behaviour
        self.books = books
        self.recorder = recorder
        self.greylist = greylist
        self.tls_context = tls_context if behaviour.tls else None
        self.live: set[SimulatedSMTP] = set()
        self._server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve on an already bound socket."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SimulatedSMTP(self, loop=loop), sock=sock)

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is None:
            return
        self._server.close()
        for protocol in list(self.live):
            protocol.abort()
        await self._server.wait_closed()
        for _ in range(100):  # connection_lost callbacks run on the next loop iterations
            if not self.live:
                break
            await asyncio.sleep(0)
        self._server = None


class _Hooks:
    """aiosmtpd handler hooks (EHLO, MAIL, RCPT) for one `MxServer`."""

    def __init__(self, mx: MxServer) -> None:
        self.mx = mx

    async def handle_EHLO(
        self,
        server: SimulatedSMTP,
        session: Any,
        envelope: Any,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        lines = [line for line in responses[:-1] if not line.startswith("250-AUTH")]
        if self.mx.behaviour.pipelining:
            lines.append("250-PIPELINING")
        lines.append("250-ENHANCEDSTATUSCODES")
        return [*lines, responses[-1]]

    async def handle_MAIL(
        self, server: SimulatedSMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SimulatedSMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        mx = self.mx
        reply = decide_rcpt(
            address,
            behaviour=mx.behaviour,
            books=mx.books,
            client_ip=str(session.peer[0]),
            mail_from=str(envelope.mail_from),
            greylist=mx.greylist,
            now=time.monotonic(),
        )
        if reply.accepted:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        if reply.unknown:
            server.invalid_rcpts += 1
            budget = mx.behaviour.max_invalid_rcpts
            if budget is not None and server.invalid_rcpts > budget:
                mx.recorder.closed_with_421()
                server.close_after_reply = True
                return TOO_MANY_INVALID
        return reply.text


class SimulatedSMTP(SMTP):
    """aiosmtpd's SMTP protocol with a `Behaviour` applied; one instance per connection."""

    def __init__(self, mx: MxServer, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(
            _Hooks(mx),
            hostname=mx.host,
            ident=IDENT,
            tls_context=mx.tls_context,
            require_starttls=mx.behaviour.require_starttls,
            enable_SMTPUTF8=True,
            loop=loop,
        )
        self.mx = mx
        self.invalid_rcpts = 0
        self.close_after_reply = False
        self._connection_id = 0
        self._raw_transport: asyncio.BaseTransport | None = None
        self._over_limit = False
        self._lost = False
        # The banner, and then each command that had to be waited for, starts a flight: the
        # replies to one flight cost one round trip (and one `latency`), however many there are.
        self._new_flight = True
        self._flight_pending = False
        self._banner_next = False
        self._out = b""  # reply bytes not written yet (a reply's first lines, a held flight)
        self._splits = 0  # replies split so far: where the next one is cut

    # -- connection bookkeeping -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._raw_transport is None:  # not the second call that follows STARTTLS
            self._raw_transport = transport
            _no_delay(transport)
            self._connection_id, active = self.mx.recorder.connection_opened()
            limit = self.mx.behaviour.max_connections
            self._over_limit = limit is not None and active > limit
            self.mx.live.add(self)
        else:  # the TLS handshake was a round trip: the EHLO that follows starts a flight
            self._new_flight = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._raw_transport is not None and not self._lost:
            self._lost = True
            self.mx.recorder.connection_closed()
            self.mx.live.discard(self)
        super().connection_lost(error)

    def abort(self) -> None:
        if isinstance(self._raw_transport, asyncio.Transport):
            self._raw_transport.abort()

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super()._cb_client_connected(reader, writer)
        read_line = reader.readuntil
        recorder = self.mx.recorder

        async def recording_readuntil(separator: bytes = b"\n") -> bytes:
            # A command already buffered came in the same write as the one before it (a
            # pipelined flight): its reply shares that round trip.
            if separator not in reader._buffer:  # type: ignore[attr-defined]
                self._new_flight = True
            line = await read_line(separator)
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            recorder.command(self._connection_id, text)
            return line

        reader.readuntil = recording_readuntil  # type: ignore[method-assign,assignment]

    # -- the session -----------------------------------------------------------------------

    async def _handle_client(self) -> None:
        if self._over_limit:
            self.mx.recorder.closed_with_421()
            self.close_after_reply = True
            await self.push(TOO_MANY_CONNECTIONS)
            return
        if self.mx.behaviour.tarpit_seconds:
            await asyncio.sleep(self.mx.behaviour.tarpit_seconds)
        self._banner_next = True  # aiosmtpd's first push is the 220 banner
        await super()._handle_client()

    async def push(self, status: str | bytes) -> None:
        """Send one reply, or some lines of one (aiosmtpd pushes EHLO's line by line); `status`
        may hold several lines separated by CRLF."""
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        if text == _BARE_530:
            text = _ENHANCED_530
        banner, self._banner_next = self._banner_next, False
        if banner:
            text = self._banner(text)
        lines = text.split("\r\n")
        final = lines[-1][3:4] != "-"  # the reply's last line
        first_of_flight, self._new_flight = self._new_flight, False
        if first_of_flight and self.mx.behaviour.latency:
            await asyncio.sleep(self.mx.behaviour.latency)
        if first_of_flight and final:  # counted before it is sent
            self.mx.recorder.reply()
        elif first_of_flight:
            self._flight_pending = True
        elif self._flight_pending and final:
            self._flight_pending = False
            self.mx.recorder.reply()
        await self._write(lines, final=final, banner=banner)
        if self.close_after_reply and final:
            self._hang_up()

    def _banner(self, text: str) -> str:
        """The 220 banner over `banner_lines` lines (a 421 refusal stays as it is)."""
        count = self.mx.behaviour.banner_lines
        if count == 1 or not text.startswith("220 "):
            return text
        fillers = [_BANNER_FILLER] * (count - 2)
        return "\r\n".join([f"220-{text[4:]}", *fillers, f"220 {self.hostname} ready"])

    async def _write(self, lines: list[str], *, final: bool, banner: bool) -> None:
        """Write these lines as `Behaviour.segments` (and `slow_banner`) say."""
        behaviour = self.mx.behaviour
        data = b"".join(line.encode("utf-8") + b"\r\n" for line in lines)
        if behaviour.segments == "per_line" and not (banner and behaviour.slow_banner):
            for line in lines:
                await self._send(line.encode("utf-8") + b"\r\n")
            return
        self._out += data
        if not final:
            return  # the rest of the reply comes with the next push
        closing = self.close_after_reply or lines[-1][:3] in _CLOSING_CODES
        if behaviour.segments == "per_flight" and not closing and self._command_waiting():
            return  # held: written with the replies to the commands already received
        out, self._out = self._out, b""
        size = len(out)
        if banner and behaviour.slow_banner:
            await self._trickle(out, (1, size // 2, size - 1), pause=behaviour.slow_banner)
        elif behaviour.segments == "split":
            # in the reply code, in the middle, between the last CR and LF: by turns
            cut = (2, size // 2, size - 1)[self._splits % 3]
            self._splits += 1
            await self._trickle(out, (cut,), pause=behaviour.split_pause)
        else:
            await self._send(out)

    def _command_waiting(self) -> bool:
        """Whether a whole command line has already been received and not yet read."""
        return b"\n" in self._reader._buffer  # type: ignore[attr-defined]

    async def _trickle(self, data: bytes, cuts: tuple[int, ...], *, pause: float) -> None:
        """Write `data` in pieces cut at these offsets, `pause` seconds apart."""
        bounds = sorted({cut for cut in cuts if 0 < cut < len(data)})
        for index, (start, end) in enumerate(zip([0, *bounds], [*bounds, len(data)], strict=True)):
            if index:
                await asyncio.sleep(pause)
            await self._send(data[start:end])

    async def _send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # the client has gone
        self._writer.write(data)
        await self._writer.drain()

    def _hang_up(self) -> None:
        """Close the connection the way aiosmtpd does after QUIT (held replies go first)."""
        out, self._out = self._out, b""
        if out and self.transport is not None and not self.transport.is_closing():
            self._writer.write(out)
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        if self.transport is not None:
            self.transport.close()

    async def smtp_DATA(self, arg: str | None) -> None:
        await self.push(DATA_FORBIDDEN)

    async def smtp_BDAT(self, arg: str | None) -> None:
        # The chunk that follows BDAT would be read as commands: refuse, then hang up.
        await self.push(DATA_FORBIDDEN)
        self._hang_up()
