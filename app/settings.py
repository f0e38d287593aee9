"""The one settings object: environment variables prefixed `MXPROBE_`, plus `DATABASE_URL`.

Read once, at the edges (API, worker, CLI), and handed to the engine as frozen config objects.
Every field is documented in the README's settings table.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from cryptography.fernet import Fernet
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app import durations
from app.engine.config import DnsConfig, MxOverride, ProbeConfig, ProxyConfig
from app.engine.rules import trust
from app.engine.rules.rates import Rate, parse_rate
from app.engine.rules.syntax import has_control_chars


class MxLimit(BaseModel):
    """One entry of MXPROBE_MX_LIMITS, in the Reacher bulk spec's shape."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    max_smtp_out: int | None = Field(default=None, ge=1)
    max_msg_per_connection: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("max_msg_per_connection", "max-msg-per-connection"),
    )
    max_errors_per_connection: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("max_errors_per_connection", "max-errors-per-connection"),
    )
    max_msg_rate: str | None = Field(
        default=None, validation_alias=AliasChoices("max_msg_rate", "max-msg-rate")
    )  # RCPTs per time unit, "9/m"; replaces MXPROBE_MX_RATE for this group

    @field_validator("max_msg_rate")
    @classmethod
    def _valid_rate(cls, value: str | None) -> str | None:
        return _normal_rate(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MXPROBE_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        # A bad value is named and explained, never echoed: proxy URLs, the database URL and
        # the secrets carry passwords, and start-up errors end up in logs.
        hide_input_in_errors=True,
    )

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "MXPROBE_DATABASE_URL")
    )
    data_dir: Path = Path(".mxprobe")

    # The SMTP conversation
    hello_name: str = "localhost"
    from_email: str = "user@example.org"
    connect_timeout: float = Field(default=10.0, gt=0)
    smtp_timeout: float = Field(default=10.0, gt=0)
    smtp_ports: Annotated[tuple[int, ...], NoDecode] = (25,)
    # Proxies (README "Proxies"). MXPROBE_PROXY: every probe's, unless a request names another.
    proxy: str | None = Field(default=None, repr=False)  # socks5://user:pass@host:port
    # The proxies a request may choose by name ("proxy": "eu"): {"eu": "socks5://..."}.
    proxies: dict[str, str] = Field(default_factory=dict, repr=False)
    # Free-form proxies in requests ({"host", "port", ...}): off, as they reach anywhere.
    allow_request_proxy: bool = False
    # A free-form proxy's host may resolve to a private/loopback address (never by default).
    allow_private_proxy: bool = False
    # A Fernet key (`mxprobe`'s README): seals a bulk job's free-form proxy credentials.
    secret_key: SecretStr | None = None
    allow_private_mx: bool = False
    starttls: bool = True
    # Provider trust (README "Fields of a result"): providers trusted besides seed 003's list
    # (names, aliases or MX host domains), and the verdict policy.
    trusted_providers: Annotated[tuple[str, ...], NoDecode] = ()
    policy: Literal["none", "trusted_providers_only"] = "none"

    # DNS
    dns_nameservers: Annotated[tuple[str, ...], NoDecode] = ()
    dns_timeout: float = Field(default=5.0, gt=0)  # per try and nameserver
    dns_tries: int = Field(default=2, ge=1)

    # Catch-all and greylisting
    catch_all_ttl: float = Field(default=86_400.0, ge=0)
    greylist_retry_delay: float = Field(default=300.0, ge=0)
    greylist_max_attempts: int = Field(default=3, ge=1)
    check_greylist_wait: float = Field(default=0.0, ge=0)

    # Result cache (app/cache.py): a result younger than this is reused, in seconds or a
    # duration ("12h", "1d", "P1D"); 0 turns the cache off.
    result_cache_ttl: Annotated[float, BeforeValidator(durations.seconds)] = Field(
        default=86_400.0, ge=0, allow_inf_nan=False
    )

    # Politeness
    mx_concurrency: int = Field(default=5, ge=1)
    session_idle_timeout: float = Field(default=5.0, ge=0)
    slot_wait: float = Field(default=10.0, ge=0)
    busy_cooldown: float = Field(default=60.0, ge=0)
    behaviour_sync_interval: float = Field(default=5.0, gt=0)
    mx_limits: dict[str, MxLimit] = Field(default_factory=dict)
    mx_rate: str | None = None  # RCPTs per MX group and time unit, "9/m"; unset: no limit
    global_concurrency: int = Field(default=200, ge=1)

    # API and bulk
    header_secret: str | None = None
    # Only a job's token (not its sequential id) finds it in /v0/bulk/{job_id}: for tenants.
    require_job_token: bool = False
    # Web front ends on these origins may call the API (CORS): "https://a.test,https://b.test"
    # or a JSON list; "*" for any. Unset: no CORS headers at all.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    bulk_max_emails: int = Field(default=1_000_000, ge=1)
    # Unset: 64 bytes per address of bulk_max_emails, plus 64 KiB (app/api/limits.py).
    bulk_max_bytes: int | None = Field(default=None, ge=1024)
    # Lists from a URL (`input_type: "remote_url"`, app/fetch.py). Hosts must resolve to public
    # addresses only, unless allow_private_urls; the limit counts the body as received and as
    # decoded; the timeout is per read (a server silent that long mid-body ends the fetch).
    allow_private_urls: bool = False
    remote_max_bytes: int = Field(default=1 << 30, ge=1)
    remote_timeout: float = Field(default=30.0, gt=0)
    # Webhooks (app/webhooks.py): signed with webhook_secret (Standard Webhooks: `whsec_` and
    # base64, or any other text, used as is); each POST may take webhook_timeout seconds; a
    # failed one is retried after webhook_retry_delay, doubling up to webhook_retry_max_delay,
    # until webhook_retry_for seconds after its first try, then given up. URLs follow
    # allow_private_urls, as lists' URLs do. A worker posts at most webhook_concurrency at once.
    webhook_secret: SecretStr | None = None
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_retry_delay: float = Field(default=5.0, gt=0)
    webhook_retry_max_delay: float = Field(default=600.0, gt=0)
    webhook_retry_for: float = Field(default=3600.0, ge=0)
    webhook_concurrency: int = Field(default=4, ge=1)
    # HTTP (uvicorn): slow and greedy clients. Seconds, unless said otherwise.
    http_header_timeout: float = Field(default=10.0, gt=0)  # a request's first byte → its headers
    http_body_timeout: float = Field(default=60.0, gt=0)  # its headers → the end of its body
    http_keep_alive_timeout: int = Field(default=5, ge=1)  # idle between requests
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # request line + headers
    http_limit_concurrency: int = Field(default=1000, ge=1)  # connections: past it, 503
    result_retention_days: float = Field(default=30.0, gt=0)
    worker_concurrency: int = Field(default=50, ge=1)
    # Workers (procrastinate): a worker whose heartbeat is older than worker_stalled_timeout
    # is dead, and the jobs it held are retried by any live worker's periodic check.
    worker_heartbeat_interval: float = Field(default=10.0, gt=0)
    worker_stalled_timeout: float = Field(default=30.0, gt=0)
    worker_poll_interval: float = Field(default=0.5, gt=0)
    worker_shutdown_timeout: float = Field(default=30.0, ge=0)
    # While PostgreSQL is unreachable, workers retry with a doubling, jittered pause up to this.
    database_retry_max_delay: float = Field(default=5.0, gt=0)
    # Logs and metrics (app/logs.py, app/metrics.py). A worker serves /metrics on this port
    # (unset: none); `mxprobe serve` gives its n-th worker this port + n.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.lower() if info.field_name == "log_format" else value.upper()

    @model_validator(mode="after")
    def _stalled_after_heartbeats(self) -> Settings:
        if self.worker_stalled_timeout <= 2 * self.worker_heartbeat_interval:
            raise ValueError(
                "worker_stalled_timeout must exceed twice worker_heartbeat_interval, or live "
                "workers would be taken for dead"
            )
        return self

    @field_validator("smtp_ports", mode="before")
    @classmethod
    def _split_ports(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(p) for p in value.replace(" ", "").strip("[]").split(",") if p)
        return value

    @field_validator("smtp_ports")
    @classmethod
    def _valid_ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 0 < p < 65536 for p in value):
            raise ValueError("smtp_ports must be one or more ports between 1 and 65535")
        return value

    @field_validator("cors_origins", "trusted_providers", mode="before")
    @classmethod
    def _split_list(cls, value: object, info: ValidationInfo) -> object:
        """A list in the environment: commas (`a,b`) or JSON (`["a", "b"]`)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return tuple(json.loads(text))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{info.field_name}: not a JSON list") from exc
        return tuple(item.strip() for item in text.split(",") if item.strip())

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    "cors_origins: each origin is scheme://host[:port], without a path or a "
                    'trailing slash (e.g. https://app.example.com), or "*"'
                )
        return value

    @field_validator("trusted_providers")
    @classmethod
    def _known_providers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if (problem := trust.entry_problem(entry)) is not None:
                raise ValueError(f"trusted_providers: {problem}")
        return tuple(entry.strip().lower() for entry in value)

    @field_validator("dns_nameservers", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(s for s in value.replace(" ", ",").split(",") if s)
        return value

    @field_validator("hello_name", "from_email")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        if has_control_chars(value) or not value:
            raise ValueError("must be non-empty and contain no control characters")
        return value

    @field_validator("header_secret")
    @classmethod
    def _sendable_secret(cls, value: str | None) -> str | None:
        """A header value a client can send and the server reads back unchanged."""
        if value and not (value.isascii() and value.isprintable() and value == value.strip()):
            raise ValueError(
                "must be printable ASCII without leading or trailing spaces (it is sent as an "
                "HTTP header)"
            )
        return value or None

    @field_validator("proxy")
    @classmethod
    def _valid_proxy(cls, value: str | None) -> str | None:
        if value:
            parse_proxy_url(value)
        return value or None

    @field_validator("proxies")
    @classmethod
    def _valid_proxies(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not re.fullmatch(PROXY_NAME_PATTERN, name):
                raise ValueError(
                    f"proxy name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', starting "
                    "with a letter or digit"
                )
            try:
                parse_proxy_url(url)
            except ValueError as exc:
                raise ValueError(f"proxy {name!r}: {exc}") from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _valid_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        try:
            Fernet(value.get_secret_value())
        except ValueError:
            raise ValueError(
                "must be a Fernet key (32 url-safe base64-encoded bytes), e.g. from "
                '`python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`'
            ) from None
        return value

    @field_validator("mx_rate")
    @classmethod
    def _valid_mx_rate(cls, value: str | None) -> str | None:
        return _normal_rate(value)

    def dns_config(self) -> DnsConfig:
        return DnsConfig(
            nameservers=self.dns_nameservers, timeout=self.dns_timeout, tries=self.dns_tries
        )

    def probe_config(self) -> ProbeConfig:
        return ProbeConfig(
            hello_name=self.hello_name,
            from_email=self.from_email,
            connect_timeout=self.connect_timeout,
            smtp_timeout=self.smtp_timeout,
            smtp_ports=self.smtp_ports,
            allow_private_mx=self.allow_private_mx,
            proxy=parse_proxy_url(self.proxy) if self.proxy else None,
            catch_all_ttl=self.catch_all_ttl,
            greylist_inline_retry=self.check_greylist_wait,
            starttls=self.starttls,
            session_idle_timeout=self.session_idle_timeout,
            slot_wait=self.slot_wait,
            busy_cooldown=self.busy_cooldown,
            trusted_providers=self.trusted_providers,
            policy=self.policy,
            mx_overrides=tuple(
                MxOverride(
                    key=key.lower(),
                    max_smtp_out=limit.max_smtp_out,
                    max_msg_per_connection=limit.max_msg_per_connection,
                    max_errors_per_connection=limit.max_errors_per_connection,
                )
                for key, limit in self.mx_limits.items()
            ),
        )

    def named_proxies(self) -> dict[str, ProxyConfig]:
        """MXPROBE_PROXIES, parsed: the proxies a request may choose by name."""
        return {name: parse_proxy_url(url) for name, url in self.proxies.items()}

    def session_limits(self) -> dict[str, int]:
        """Per-group session caps that differ from MXPROBE_MX_CONCURRENCY."""
        return {
            key.lower(): limit.max_smtp_out
            for key, limit in self.mx_limits.items()
            if limit.max_smtp_out is not None
        }

    def default_rate(self) -> Rate | None:
        """MXPROBE_MX_RATE, parsed: every MX group's send rate; None for no limit."""
        return parse_rate(self.mx_rate) if self.mx_rate else None

    def rate_limits(self) -> dict[str, Rate]:
        """Per-group send rates (`max_msg_rate`) that replace MXPROBE_MX_RATE."""
        return {
            key.lower(): parse_rate(limit.max_msg_rate)
            for key, limit in self.mx_limits.items()
            if limit.max_msg_rate is not None
        }


def _normal_rate(value: str | None) -> str | None:
    """A valid rate in its normal form ("9 / m" → "9/m"); blank → None."""
    return str(parse_rate(value)) if value and value.strip() else None


PROXY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""A name of MXPROBE_PROXIES, which a request's `"proxy": "name"` picks."""

_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?"
)
"""A web origin as browsers send it (`Origin`): scheme, host and optional port, nothing more."""


def parse_proxy_url(url: str) -> ProxyConfig:
    """`socks5://user:pass@host:1080` → ProxyConfig: an operator's, trusted with any address.
    Credentials SOCKS5 cannot send (`config.credentials_problem`) are a ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("socks5", "socks5h") or not parts.hostname or not parts.port:
        raise ValueError("proxy must look like socks5://[user:pass@]host:port")
    return ProxyConfig(
        host=parts.hostname,
        port=parts.port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        allow_private=True,
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
