"""Reacher's `CheckEmailOutput`, field for field, plus what our `debug` adds.

Key order matters to clients that diff JSON: `input, is_reachable, misc, mx, smtp, syntax, debug`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Reachable(StrEnum):
    SAFE = "safe"
    RISKY = "risky"
    INVALID = "invalid"
    UNKNOWN = "unknown"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class CoreError(_Model):
    """Reacher's error object: `{"type": ..., "message": ...}`."""

    type: str
    message: str


def _absent_if_none(value: object) -> bool:
    return value is None


class SpfDetails(_Model):
    """Our addition: the domain's SPF record, as far as it bears on its mail provider."""

    record_found: bool | None  # None: the TXT lookup failed (`error` says how)
    authorises_provider: bool | None  # None: no provider with a known SPF domain to look for
    providers: list[str] = Field(default_factory=list)  # providers its include:/redirect= name
    error: str | None = Field(default=None, exclude_if=_absent_if_none)


class MiscDetails(_Model):
    is_disposable: bool = False
    is_role_account: bool = False
    is_b2c: bool = False
    gravatar_url: str | None = None
    haveibeenpwned: bool | None = None
    # Ours, after Reacher's five, each absent where it does not apply (README "Fields of a
    # result"): invalid syntax has none of them, a domain without mail no provider.
    provider: str | None = Field(default=None, exclude_if=_absent_if_none)
    provider_source: str | None = Field(default=None, exclude_if=_absent_if_none)  # mx | spf
    provider_trusted: bool | None = Field(default=None, exclude_if=_absent_if_none)
    spf: SpfDetails | None = Field(default=None, exclude_if=_absent_if_none)
    username_entropy: float | None = Field(default=None, exclude_if=_absent_if_none)
    is_random_looking: bool | None = Field(default=None, exclude_if=_absent_if_none)


class MxDetails(_Model):
    accepts_mail: bool
    records: list[str]


class MxError(_Model):
    error: CoreError


class SmtpDetails(_Model):
    can_connect_smtp: bool = False
    has_full_inbox: bool = False
    is_catch_all: bool = False
    is_deliverable: bool = False
    is_disabled: bool = False


class SmtpError(_Model):
    error: CoreError
    # Reacher omits the key when there is nothing to say.
    description: str | None = Field(default=None, exclude_if=lambda v: v is None)


class SyntaxDetails(_Model):
    address: str | None
    domain: str
    is_valid_syntax: bool
    username: str
    normalized_email: str | None
    suggestion: str | None


class Duration(_Model):
    secs: int
    nanos: int

    @classmethod
    def from_seconds(cls, seconds: float) -> Duration:
        whole = int(seconds)
        return cls(secs=whole, nanos=round((seconds - whole) * 1e9))


class VerifParams(_Model):
    from_email: str
    hello_name: str
    proxy: dict[str, Any] | None
    smtp_port: int
    smtp_timeout: Duration | None
    retries: int


class VerifMethod(_Model):
    type: str  # "Smtp" | "Skipped"
    host: str | None = Field(default=None, exclude_if=lambda v: v is None)
    verif_method: VerifParams | None = Field(default=None, exclude_if=lambda v: v is None)


class DebugSmtp(_Model):
    verif_method: VerifMethod


class ProbeDebug(_Model):
    """Our addition: what the RCPT probe saw (seed 001's structured probe result)."""

    category: str  # accept | hard_fail | temp_fail | unknown
    code: int | None
    message: str | None
    elapsed_ms: int
    mx_host: str | None
    attempts: int = 1


class CacheDebug(_Model):
    """Our addition: whether the result came from the result cache (MXPROBE_RESULT_CACHE_TTL),
    and if so when it was probed and how long ago (the rest of `debug` is that probe's)."""

    hit: bool
    age_seconds: float | None = Field(default=None, exclude_if=lambda v: v is None)
    checked_at: str | None = Field(default=None, exclude_if=lambda v: v is None)


class PolicyDebug(_Model):
    """Our addition: the verdict policy in force (MXPROBE_POLICY or the request's)."""

    name: str  # trusted_providers_only
    changed_verdict: bool
    reason: str | None = None


class DebugDetails(_Model):
    backend_name: str
    start_time: str
    end_time: str
    duration: Duration
    smtp: DebugSmtp
    provider: str | None = None
    probe: ProbeDebug | None = None
    policy: PolicyDebug | None = Field(default=None, exclude_if=_absent_if_none)
    # Absent when the cache is off or was not asked (invalid syntax).
    cache: CacheDebug | None = Field(default=None, exclude_if=lambda v: v is None)


class CheckEmailOutput(_Model):
    input: str
    is_reachable: Reachable
    misc: MiscDetails
    mx: MxDetails | MxError
    smtp: SmtpDetails | SmtpError
    syntax: SyntaxDetails
    debug: DebugDetails

    @property
    def from_cache(self) -> bool:
        """Answered from the result cache, with no probe (`debug.cache.hit`)."""
        return self.debug.cache is not None and self.debug.cache.hit

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
