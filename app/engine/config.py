"""Frozen configuration the engine is given by its callers (it never reads the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_CREDENTIAL_LENGTH = 255
"""RFC 1929 gives a SOCKS5 username and password one length byte each."""


def credential_problem(value: str) -> str | None:
    """Why a SOCKS5 username or password could not be sent, or None. python-socks 3.2 writes
    `len(value)` in one byte and then `value.encode("ascii")`: a longer or non-ASCII value
    raises in the middle of a connect, and an empty one is silently not sent at all."""
    if not value:
        return "must not be empty"
    if not value.isascii():
        return "must be ASCII (SOCKS5 sends no other characters)"
    if len(value) > MAX_CREDENTIAL_LENGTH:
        return f"must be at most {MAX_CREDENTIAL_LENGTH} characters (SOCKS5 sends no longer)"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters"
    return None


def credentials_problem(username: str | None, password: str | None) -> str | None:
    """Why this pair of SOCKS5 credentials could not be sent, or None. python-socks offers
    username/password authentication only when both are given: one alone would be dropped."""
    if (username is None) != (password is None):
        return "username and password go together: give both or neither"
    for name, value in (("username", username), ("password", password)):
        if value is not None and (problem := credential_problem(value)) is not None:
            return f"{name} {problem}"
    return None


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """A SOCKS5 proxy the SMTP probe connects through.

    `allow_private`: an operator's proxy (trusted: any address). False for a proxy a request
    named by host: its host is resolved and every address must be global unicast, like an
    MX's, and the connection goes to the address that was checked."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    allow_private: bool = False

    def __post_init__(self) -> None:
        if (problem := credentials_problem(self.username, self.password)) is not None:
            raise ValueError(f"proxy {problem}")

    def public(self) -> dict[str, object]:
        """What may appear in output: never the credentials."""
        return {"host": self.host, "port": self.port}


@dataclass(frozen=True, slots=True)
class DnsConfig:
    nameservers: tuple[str, ...] = ()  # "host" or "host:port"; empty: /etc/resolv.conf
    timeout: float = 5.0  # seconds each nameserver gets in each try, however fast it was lately
    tries: int = 2  # a query is sent again only after a try got no answer in time
    cache_size: int = 10_000
    # A floor and ceiling on cached TTLs, so a 0-TTL record still saves repeated lookups within
    # one list and a week-long TTL doesn't pin a stale answer.
    min_ttl: float = 5.0
    max_ttl: float = 3600.0
    negative_ttl: float = 60.0


@dataclass(frozen=True, slots=True)
class MxOverride:
    """Limits for one MX group (a provider such as "gmail", or an MX host name) that replace
    the defaults and the provider's built-in policy (seed 002's `limits` shape)."""

    key: str
    max_smtp_out: int | None = None  # simultaneous sessions
    max_msg_per_connection: int | None = None  # recipients per session
    max_errors_per_connection: int | None = None  # unknown recipients per session


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    hello_name: str = "localhost"
    from_email: str = "user@example.org"
    connect_timeout: float = 10.0
    smtp_timeout: float = 10.0  # per command
    smtp_ports: tuple[int, ...] = (25,)
    allow_private_mx: bool = False
    proxy: ProxyConfig | None = None
    catch_all_ttl: float = 86_400.0
    # A single check may retry a 4xx once within its time budget if the wait is this short.
    greylist_inline_retry: float = 0.0
    starttls: bool = True
    # Keep a session open this long after its last address, for the next one to the same MX
    # (0: one connection per check).
    session_idle_timeout: float = 0.0
    # How long a check waits for a slot of a busy MX group.
    slot_wait: float = 30.0
    # After a 421 banner or a banner timeout, one slot of that MX group stays unused this long.
    busy_cooldown: float = 60.0
    mx_overrides: tuple[MxOverride, ...] = ()
    backend_name: str = "mxprobe"
    # Providers trusted besides seed 003's list (names, aliases or MX host domains:
    # `rules.trust.trusted_list`), and the verdict policy ("none" | "trusted_providers_only").
    trusted_providers: tuple[str, ...] = ()
    policy: str = "none"
