"""One SMTP session to one MX: banner, EHLO, opportunistic STARTTLS, then flights of RSET /
MAIL FROM / RCPT TO lines (pipelined where the server allows), QUIT.

The probe speaks this small command set itself, on asyncio streams, rather than through a
general SMTP client: replies are read from the stream in order, one after another, so the
replies to a pipelined write are never lost however the server's bytes are cut into segments,
and it behaves the same on every event loop (asyncio's, uvloop), plain, after STARTTLS
(`StreamWriter.start_tls`) and through a SOCKS5 proxy (a connected socket from python-socks).

There is deliberately no DATA (or BDAT) method, and a line starting with either is refused:
this module can't send a message. Every string that reaches the wire is checked for control
characters first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.engine import errors
from app.engine.config import ProxyConfig
from app.engine.probes.proxy import open_socket
from app.engine.probes.transcript import Transcript
from app.engine.rules.syntax import has_control_chars

# A reply longer than this (all its lines) is not an SMTP server talking.
MAX_REPLY_BYTES = 64 * 1024
_NEVER_SENT = frozenset({"DATA", "BDAT"})


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    message: str  # the reply's text, its lines joined by "\n", without the codes
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class Flight:
    """The replies to one write of commands, in order; `error` if it was cut short."""

    replies: list[Reply]
    error: errors.SmtpError | None = None


def _command(line: str, encoding: str) -> bytes:
    if has_control_chars(line):
        raise errors.UnsafeAddress(f"refusing to send {line!r}: control characters")
    if line.split(" ", 1)[0].upper() in _NEVER_SENT:
        raise errors.UnsafeAddress(f"refusing to send {line!r}: the probe never sends a message")
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


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One whole reply, single- or multi-line (`250-...` lines, then `250 ...`): its code and
    its text. Raises `SmtpDisconnected` at end of stream, `SmtpProtocolError` on garbage."""
    lines: list[str] = []
    size = 0
    while True:
        try:
            raw = await reader.readline()
        except ValueError as exc:  # a line longer than the stream's limit
            raise errors.SmtpProtocolError("reply line too long") from exc
        if not raw.endswith(b"\n"):
            raise errors.SmtpDisconnected("the server hung up")
        size += len(raw)
        if size > MAX_REPLY_BYTES:
            raise errors.SmtpProtocolError("reply too long")
        text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        code, separator, rest = text[:3], text[3:4], text[4:]
        if not (code.isdigit() and separator in ("", " ", "-")):
            raise errors.SmtpProtocolError(f"not an SMTP reply: {text[:80]!r}")
        lines.append(rest)
        if separator != "-":
            return int(code), "\n".join(lines)


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
        transcript: Transcript | None = None,
    ) -> None:
        """`transcript`: where every command, reply and event of this session is written."""
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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.extensions: frozenset[str] = frozenset()
        self.tls = False
        self._transcript = transcript
        self._session_no = 0

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self.extensions

    @property
    def smtputf8(self) -> bool:
        return "smtputf8" in self.extensions

    @property
    def is_open(self) -> bool:
        return (
            self._writer is not None
            and self._reader is not None
            and not self._writer.is_closing()
            and not self._reader.at_eof()
        )

    async def open(self) -> None:
        """Connect, read the banner, EHLO, STARTTLS when offered, EHLO again."""
        if self._transcript is not None:
            via = f" via SOCKS5 {self._proxy.host}:{self._proxy.port}" if self._proxy else ""
            self._session_no = self._transcript.begin(
                f"connecting to {self.mx_host} [{self.address}]:{self.port}{via}"
            )
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._connect()
                code, text = await read_reply(self._stream()[0])
            self._heard(code, text)
            if code != 220:
                raise errors.SmtpProtocolError(f"banner: {code} {text}", code=code, reply=text)
            await self._ehlo()
            if self._starttls and "starttls" in self.extensions:
                await self._start_tls()
                await self._ehlo()
        except BaseException as exc:
            self._abort()
            error = _translate(exc, self._connect_timeout)
            self._note(f"session failed: {error}")
            raise error from exc

    async def _connect(self) -> None:
        if self._proxy is not None:
            sock = await open_socket(
                self._proxy, host=self.address, port=self.port, within=self._connect_timeout
            )
            self._reader, self._writer = await asyncio.open_connection(
                sock=sock, limit=MAX_REPLY_BYTES
            )
        else:
            self._reader, self._writer = await asyncio.open_connection(
                self.address, self.port, limit=MAX_REPLY_BYTES
            )

    def _stream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise errors.SmtpDisconnected("the session is closed")
        return self._reader, self._writer

    async def _ask(self, line: str) -> tuple[int, str]:
        """One command, one reply, within the command timeout."""
        reader, writer = self._stream()
        writer.write(_command(line, "ascii"))
        self._said(line)
        try:
            async with asyncio.timeout(self._command_timeout):
                code, text = await read_reply(reader)
                self._heard(code, text)
                return code, text
        except TimeoutError as exc:
            raise errors.SmtpTimeout(
                f"no reply to {line.split()[0]} within {self._command_timeout:g} s",
                seconds=self._command_timeout,
            ) from exc

    async def _ehlo(self) -> None:
        code, text = await self._ask(f"EHLO {self.hello_name}")
        if code == 250:
            # The first line greets; each further line names an extension and its parameters.
            self.extensions = frozenset(
                line.split()[0].lower() for line in text.split("\n")[1:] if line.strip()
            )
            return
        # Some old servers only speak HELO (and offer no extensions).
        code, text = await self._ask(f"HELO {self.hello_name}")
        if code != 250:
            raise errors.SmtpProtocolError(f"EHLO refused: {code} {text}", code=code, reply=text)
        self.extensions = frozenset()

    async def _start_tls(self) -> None:
        code, text = await self._ask("STARTTLS")
        if code != 220:
            raise errors.SmtpProtocolError(
                f"STARTTLS refused: {code} {text}", code=code, reply=text
            )
        _, writer = self._stream()
        await writer.start_tls(
            _tls_context(),
            server_hostname=self.mx_host,
            ssl_handshake_timeout=self._connect_timeout,
        )
        self.tls = True
        self._note("TLS established")

    def mail_from(self, *, utf8: bool) -> str:
        """The MAIL FROM line opening a transaction (SMTPUTF8 when a recipient needs it)."""
        return f"MAIL FROM:<{self.from_email}>" + (" SMTPUTF8" if utf8 else "")

    async def exchange(self, lines: Sequence[str]) -> Flight:
        """Send `lines` in one write and read one reply per line, in order (RFC 2920: replies
        to pipelined commands come back in the order the commands were sent, so the n-th reply
        answers the n-th line). Callers send several lines only to a server that advertises
        PIPELINING. The replies read before a failure come back with the error."""
        if not self.is_open:
            return Flight([], errors.SmtpDisconnected("the server hung up"))
        reader, writer = self._stream()
        encoding = "utf-8" if self.smtputf8 else "ascii"
        replies: list[Reply] = []
        started = time.perf_counter()
        data = b"".join(_command(line, encoding) for line in lines)
        try:
            writer.write(data)
            for line in lines:
                self._said(line)
            for _ in lines:
                async with asyncio.timeout(self._command_timeout):
                    code, text = await read_reply(reader)
                self._heard(code, text)
                replies.append(Reply(code, text, _ms_since(started)))
        except (errors.SmtpError, OSError, TimeoutError, ssl.SSLError) as exc:
            # A reply that never came leaves the stream out of step: this session is done.
            self._abort()
            error = _translate(exc, self._command_timeout)
            assert isinstance(error, errors.SmtpError)
            self._note(f"session failed: {error}")
            return Flight(replies, error)
        return Flight(replies, None)

    async def close(self) -> None:
        """QUIT politely and wait until the connection is really closed; never raises."""
        writer = self._writer
        if writer is None:
            return
        if self.is_open:
            with contextlib.suppress(errors.SmtpError, OSError, TimeoutError, ssl.SSLError):
                async with asyncio.timeout(min(self._command_timeout, 5.0)):
                    await self._ask("QUIT")
        self._reader = self._writer = None
        self._note("closed")
        writer.close()
        # Give the slot back only once the connection is closed (a TLS shutdown outlives
        # QUIT's reply), or the server may count us one connection too many.
        with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()

    def _said(self, line: str) -> None:
        if self._transcript is not None:
            self._transcript.record(self._session_no, "client", line)

    def _heard(self, code: int, text: str) -> None:
        if self._transcript is not None:
            self._transcript.reply(self._session_no, code, text)

    def _note(self, event: str) -> None:
        if self._transcript is not None:
            self._transcript.record(self._session_no, "event", event)

    def _abort(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.transport.abort()


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _translate(exc: BaseException, timeout: float) -> BaseException:
    """Map socket and TLS errors onto the engine's tree."""
    if isinstance(exc, errors.EngineError):
        return exc
    if isinstance(exc, TimeoutError):
        return errors.SmtpTimeout(f"timed out after {timeout:g} s", seconds=timeout)
    if isinstance(exc, ConnectionResetError | BrokenPipeError | asyncio.IncompleteReadError):
        return errors.SmtpDisconnected(f"the server hung up: {exc}")
    if isinstance(exc, ssl.SSLError):
        return errors.SmtpError(f"TLS: {exc}")
    if isinstance(exc, OSError):
        return errors.SmtpConnectError(str(exc) or type(exc).__name__)
    return exc
