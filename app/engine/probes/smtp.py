"""One SMTP session to one MX: EHLO, opportunistic STARTTLS, MAIL FROM, RCPT TO..., RSET, QUIT.

There is deliberately no DATA (or BDAT) method: this module can't send a message. Every
string that reaches the wire is checked for control characters first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from app.engine import errors
from app.engine.config import ProxyConfig
from app.engine.probes.proxy import open_socket
from app.engine.rules.syntax import has_control_chars


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    message: str
    elapsed_ms: int


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
        self.in_transaction = False
        self.tls = False
        self.rcpts_sent = 0
        self.round_trips = 0

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
            self.round_trips += 1
            await self._ehlo(smtp)
            if self._starttls and smtp.supports_extension("starttls"):
                await smtp.starttls(tls_context=_tls_context(), server_hostname=self.mx_host)
                self.round_trips += 1
                self.tls = True
                await self._ehlo(smtp)
        except BaseException as exc:
            smtp.close()
            raise _translate(exc, self._connect_timeout) from exc
        self._smtp = smtp

    async def _ehlo(self, smtp: aiosmtplib.SMTP) -> None:
        response = await smtp.ehlo(hostname=self.hello_name)
        self.round_trips += 1
        if response.code != 250:
            # Some old servers only speak HELO.
            response = await smtp.helo(hostname=self.hello_name)
            self.round_trips += 1
            if response.code != 250:
                raise errors.SmtpProtocolError(
                    "EHLO refused", code=response.code, reply=response.message
                )

    def _require(self) -> aiosmtplib.SMTP:
        if self._smtp is None:
            raise errors.SmtpDisconnected("session is not open")
        return self._smtp

    async def mail(self) -> Reply:
        """MAIL FROM for a new transaction. A refusal is an error: nothing can follow it."""
        smtp = self._require()
        started = time.perf_counter()
        try:
            response = await smtp.mail(self.from_email)
        except aiosmtplib.SMTPResponseException as exc:
            raise errors.SmtpProtocolError(
                f"MAIL FROM refused: {exc.code} {exc.message}", code=exc.code, reply=exc.message
            ) from exc
        except BaseException as exc:
            raise _translate(exc, self._command_timeout) from exc
        finally:
            self.round_trips += 1
        self.in_transaction = True
        return Reply(response.code, response.message, _ms_since(started))

    async def rcpt(self, recipient: str) -> Reply:
        """RCPT TO; any reply the server gives (250, 4xx, 5xx) comes back as a Reply."""
        _ensure_safe(recipient)
        smtp = self._require()
        if not self.in_transaction:
            await self.mail()
        started = time.perf_counter()
        try:
            response = await smtp.rcpt(recipient)
            code, message = response.code, response.message
        except aiosmtplib.SMTPRecipientRefused as exc:
            code, message = exc.code, exc.message
        except aiosmtplib.SMTPResponseException as exc:
            code, message = exc.code, exc.message
        except BaseException as exc:
            raise _translate(exc, self._command_timeout) from exc
        finally:
            self.round_trips += 1
            self.rcpts_sent += 1
        return Reply(code, message, _ms_since(started))

    async def reset(self) -> None:
        """RSET: end the transaction, keep the session."""
        smtp = self._require()
        try:
            await smtp.rset()
        except BaseException as exc:
            raise _translate(exc, self._command_timeout) from exc
        finally:
            self.round_trips += 1
        self.in_transaction = False

    async def close(self) -> None:
        """QUIT politely; never raises."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await smtp.quit(timeout=min(self._command_timeout, 5.0))
                self.round_trips += 1
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
