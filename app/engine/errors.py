"""The engine's exception tree. Each leaf is named after what happened.

Errors from the resolver, sockets, TLS and python-socks are translated in `app/engine/probes/`
with `raise ... from exc`, so no caller ever catches a library's exception type.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises."""

    kind = "EngineError"


# --- DNS ------------------------------------------------------------------------------------
class DnsError(EngineError):
    kind = "ResolveError"


class DnsNoSuchDomain(DnsError):
    """NXDOMAIN: the domain does not exist, so it takes no mail."""

    kind = "NoSuchDomain"


class DnsTimeout(DnsError):
    kind = "Timeout"


class DnsServerFailure(DnsError):
    """SERVFAIL, REFUSED and the like: say nothing about the domain."""

    kind = "ServerFailure"


# --- SMTP -----------------------------------------------------------------------------------
class SmtpError(EngineError):
    kind = "SmtpError"


class SmtpConnectError(SmtpError):
    """Could not open a connection (refused, unreachable, proxy failure)."""

    kind = "ConnectError"


class ProxyUnreachable(SmtpConnectError):
    """The SOCKS5 proxy gave no connection: refused, timed out, not SOCKS, refused our
    credentials or the destination, or resolved to an address not allowed. Always the same
    message, so a result never tells those apart; the detail goes to the log."""

    kind = "ProxyUnreachable"

    MESSAGE = "proxy unreachable"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class SmtpTimeout(SmtpError):
    kind = "Timeout"

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class SmtpProtocolError(SmtpError):
    """The server answered something we can't proceed from (bad banner, 5xx to EHLO/MAIL)."""

    kind = "AsyncSmtpError"

    def __init__(self, message: str, *, code: int | None = None, reply: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class SmtpDisconnected(SmtpError):
    kind = "Disconnected"


class UnsafeAddress(EngineError):
    """An address, hello name or sender that must never reach the wire (control characters)."""

    kind = "UnsafeInput"


class PrivateMxRefused(EngineError):
    """The MX resolves to a private/loopback/non-routable address and that is not allowed."""

    kind = "PrivateMx"


# --- stores shared with other processes ----------------------------------------------------
class StoreUnavailable(EngineError):
    """A store shared with other processes (MX limits, send rates, MX behaviour; PostgreSQL
    for the API and workers) cannot be reached for now: restarting, down, failing over. Its
    adapter raises this from the driver's error; the engine waits, or goes on without it."""

    kind = "StoreUnavailable"
