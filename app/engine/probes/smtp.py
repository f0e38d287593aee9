"""One SMTP session to one MX: EHLO, opportunistic STARTTLS, then flights of RSET / MAIL FROM /
RCPT TO lines (pipelined where the server allows), QUIT.

There is deliberately no DATA (or BDAT) method: this module can't send a message. Every
string that reaches the wire is checked for control characters first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosmtplib
from aiosmtplib.protocol import MAX_RESPONSE_LENGTH, SMTPProtocol

from app.engine import errors
from app.engine.config import ProxyConfig
from app.engine.probes.proxy import open_socket
from app.engine.rules.syntax import has_control_chars


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    message: str
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class Flight:
    """The replies to one write of commands, in order; `error` if it was cut short."""

    replies: list[Reply]
    error: errors.SmtpError | None = None


def _command(line: str, encoding: str) -> bytes:
    if has_control_chars(line):
        raise errors.UnsafeAddress(f"refusing to send {line!r}: control characters")
    return line.encode(encoding) + b"\r\n"


def rcpt_to(address: str) -> str:
    """The RCPT TO line for `address` (refused if the address could break out of it)."""
    _ensure_safe(address)
    return f"RCPT TO:<{address}>"


def _ensure_safe(*values: str) -> None:
    for value in values:
        if has_control_chars(value) or any(c in value for c in "<>"):
            raise errors.UnsafeAddress(f"refusing to send {value!r}: control characters")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Opportunistic TLS: MX certificates are routinely self-signed or mismatched, and we send
    # nothing secret; encrypting beats refusing.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _SMTP(aiosmtplib.SMTP):
    """aiosmtplib's client, telling when the connection is really gone."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gone = asyncio.Event()

    def _on_connection_lost(self, protocol: SMTPProtocol) -> None:
        super()._on_connection_lost(protocol)
        self.gone.set()


class _PipelinedReplies(SMTPProtocol):
    """aiosmtplib's protocol, able to read the replies to pipelined commands.

    aiosmtplib parses one reply per command written and drops bytes that arrive while a parsed
    reply waits to be picked up, so replies to a pipelined write would be lost. While replies
    are `owed`, every byte goes to the buffer and `next_reply` parses them from there, in order.
    """

    owed = 0
    _ended = False
    _arrived: asyncio.Event | None = None

    def data_received(self, data: bytes) -> None:
        if not self.owed:
            super().data_received(data)
            return
        self._buffer.extend(data)
        self._signal()

    def eof_received(self) -> bool:
        self._ended = True
        self._signal()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._signal()
        super().connection_lost(exc)

    def _signal(self) -> None:
        if self._arrived is not None:
            self._arrived.set()

    async def next_reply(self, within: float) -> aiosmtplib.SMTPResponse:
        """The next reply in the buffer, waiting up to `within` seconds for its bytes."""
        deadline = time.monotonic() + within
        arrived = self._arrived = self._arrived or asyncio.Event()
        while True:
            if len(self._buffer) > MAX_RESPONSE_LENGTH:
                raise aiosmtplib.SMTPResponseException(500, "Response too long")
            response = self._read_response_from_buffer()
            if response is not None:
                return response
            if self._ended:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), timeout=deadline - time.monotonic())
            except TimeoutError as exc:
                raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for a reply") from exc


class ProbeSession:
    """An open SMTP session to one MX host address; carries several RCPTs if asked to."""

    def __init__(
        self,
        *,
        mx_host: str,
        address: str,
        port: int,
        hello_name: str,
        from_email: str,
        connect_timeout: float,
        command_timeout: float,
        proxy: ProxyConfig | None = None,
        starttls: bool = True,
    ) -> None:
        _ensure_safe(hello_name, from_email)
        self.mx_host = mx_host
        self.address = address
        self.port = port
        self.hello_name = hello_name
        self.from_email = from_email
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._proxy = proxy
        self._starttls = starttls
        self._smtp: _SMTP | None = None

    @property
    def pipelining(self) -> bool:
        return self._smtp is not None and self._smtp.supports_extension("pipelining")

    @property
    def is_open(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    async def open(self) -> None:
        """Connect, read the banner, EHLO, STARTTLS when offered, EHLO again."""
        sock = None
        if self._proxy is not None:
            sock = await open_socket(
                self._proxy, host=self.address, port=self.port, within=self._connect_timeout
            )
        smtp = _SMTP(
            hostname=None if sock else self.address,
            port=None if sock else self.port,
            local_hostname=self.hello_name,
            timeout=self._command_timeout,
            start_tls=False,
            use_tls=False,
            validate_certs=False,
            sock=sock,
        )
        try:
            await smtp.connect(timeout=self._connect_timeout)
            if smtp.protocol is not None:
                # Same object, same state; only reading differs (see _PipelinedReplies).
                smtp.protocol.__class__ = _PipelinedReplies
            await self._ehlo(smtp)
            if self._starttls and smtp.supports_extension("starttls"):
                await smtp.starttls(tls_context=_tls_context(), server_hostname=self.mx_host)
                await self._ehlo(smtp)
        except BaseException as exc:
            smtp.close()
            raise _translate(exc, self._connect_timeout) from exc
        self._smtp = smtp

    async def _ehlo(self, smtp: aiosmtplib.SMTP) -> None:
        response = await smtp.ehlo(hostname=self.hello_name)
        if response.code != 250:
            # Some old servers only speak HELO.
            response = await smtp.helo(hostname=self.hello_name)
            if response.code != 250:
                raise errors.SmtpProtocolError(
                    "EHLO refused", code=response.code, reply=response.message
                )

    def mail_from(self, *, utf8: bool) -> str:
        """The MAIL FROM line opening a transaction (SMTPUTF8 when a recipient needs it)."""
        return f"MAIL FROM:<{self.from_email}>" + (" SMTPUTF8" if utf8 else "")

    @property
    def smtputf8(self) -> bool:
        return self._smtp is not None and self._smtp.supports_extension("smtputf8")

    async def exchange(self, lines: Sequence[str]) -> Flight:
        """Send `lines` in one write and read one reply per line, in order (RFC 2920: replies
        to pipelined commands come back in the order the commands were sent, so the n-th reply
        answers the n-th line). Callers send several lines only to a server that advertises
        PIPELINING. The replies read before a failure come back with the error."""
        smtp = self._smtp
        protocol = smtp.protocol if smtp is not None else None
        if smtp is None or not isinstance(protocol, _PipelinedReplies):
            return Flight([], errors.SmtpDisconnected("the server hung up"))
        encoding = "utf-8" if self.smtputf8 else "ascii"
        replies: list[Reply] = []
        started = time.perf_counter()
        try:
            data = b"".join(_command(line, encoding) for line in lines)
            protocol.owed = len(lines)
            protocol.write(data)
            for _ in lines:
                response = await protocol.next_reply(self._command_timeout)
                replies.append(Reply(response.code, response.message, _ms_since(started)))
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            # A reply that never came leaves the stream out of step: this session is done.
            smtp.close()
            error = _translate(exc, self._command_timeout)
            assert isinstance(error, errors.SmtpError)
            return Flight(replies, error)
        finally:
            protocol.owed = 0
        return Flight(replies, None)

    async def close(self) -> None:
        """QUIT politely; never raises."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await smtp.quit(timeout=min(self._command_timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            smtp.close()
        # Give the slot back only once the connection is closed (a TLS shutdown outlives
        # QUIT's reply), or the server may count us one connection too many.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(smtp.gone.wait(), timeout=1.0)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _translate(exc: BaseException, timeout: float) -> BaseException:
    """Map aiosmtplib / socket errors onto the engine's tree (keeping code and text)."""
    if isinstance(exc, errors.EngineError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError | aiosmtplib.SMTPTimeoutError):
        return errors.SmtpTimeout(str(exc) or "timed out", seconds=timeout)
    if isinstance(exc, TimeoutError):
        return errors.SmtpTimeout("timed out", seconds=timeout)
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return errors.SmtpProtocolError(
            f"banner: {exc.code} {exc.message}", code=exc.code, reply=exc.message
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return errors.SmtpProtocolError(
            f"{exc.code} {exc.message}", code=exc.code, reply=exc.message
        )
    if isinstance(exc, aiosmtplib.SMTPConnectError | ConnectionError):
        return errors.SmtpConnectError(str(exc))
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return errors.SmtpDisconnected(str(exc) or "server disconnected")
    if isinstance(exc, aiosmtplib.SMTPException | OSError | ssl.SSLError):
        return errors.SmtpError(str(exc))
    return exc
