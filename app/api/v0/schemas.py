"""Reacher's request bodies, validated strictly enough that nothing unsafe reaches the engine."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from app.engine import config
from app.engine.config import ProxyConfig
from app.engine.rules.syntax import has_control_chars
from app.settings import PROXY_NAME_PATTERN


def _whole_number(value: object) -> object:
    """JSON Schema's integer, which the OpenAPI document promises: `25` or `25.0`, never `"25"`
    or `true` (strict int validation refuses those)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Port = Annotated[int, Field(strict=True, ge=1, le=65535), BeforeValidator(_whole_number)]

MAX_ADDRESS_LENGTH = 320
"""The longest address a request may name, in characters (64 + "@" + 255, RFC 3696)."""


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored or sent on, or None: PostgreSQL text holds no NUL, and UTF-8
    no lone surrogate (which JSON can spell, `"\\ud800"`)."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "is not valid Unicode (a lone surrogate)"
    return None


def _storable(value: str) -> str:
    if (problem := text_problem(value)) is not None:
        raise ValueError(problem)
    return value


STORABLE = AfterValidator(_storable)
"""The one check every string of every request body gets: a NUL or a lone surrogate is a 400
naming the field. Put it after any length constraint (`Annotated[str, Field(...), STORABLE]`)."""

_NO_NUL = Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})

Text = Annotated[str, STORABLE, _NO_NUL]
"""A string field with no other constraint."""

Address = Annotated[str, Field(min_length=1, max_length=MAX_ADDRESS_LENGTH), STORABLE, _NO_NUL]
"""An email address to verify: any text (bad syntax is a verdict, not an error) up to 320."""

_NAME_PATTERN = "^[^\\s<>\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+$"
"""`from_email` and `hello_name` go into SMTP commands: no spaces, brackets or controls."""

FromEmail = Annotated[
    str, Field(max_length=254, json_schema_extra={"pattern": _NAME_PATTERN}), STORABLE
]
HelloName = Annotated[
    str, Field(max_length=253, json_schema_extra={"pattern": _NAME_PATTERN}), STORABLE
]


def _sendable_credential(value: str) -> str:
    if (problem := config.credential_problem(value)) is not None:
        raise ValueError(problem)
    return value


Credential = Annotated[
    str,
    # Not min_length=1: `credential_problem` says why an empty one cannot be sent.
    Field(max_length=config.MAX_CREDENTIAL_LENGTH, json_schema_extra={"pattern": "^[ -~]+$"}),
    AfterValidator(_sendable_credential),
]
"""A SOCKS5 username or password: 1 to 255 printable ASCII characters, all SOCKS5 can send."""


class ProxyIn(BaseModel):
    """A free-form SOCKS5 proxy (Reacher's shape). Refused unless the server allows them
    (MXPROBE_ALLOW_REQUEST_PROXY); its host must then be a public address (README "Proxies")."""

    model_config = ConfigDict(extra="forbid")

    host: Annotated[str, Field(min_length=1, max_length=253), STORABLE]
    port: Port | Annotated[str, Field(pattern=r"^\d{1,5}$")]
    username: Credential | None = None
    password: Credential | None = None

    @field_validator("host")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        if has_control_chars(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("port")
    @classmethod
    def _port_number(cls, value: int | str) -> int:
        number = int(value)
        if not 0 < number < 65536:
            raise ValueError("must be between 1 and 65535")
        return number

    @model_validator(mode="after")
    def _both_or_neither(self) -> ProxyIn:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both or neither")
        return self

    def to_config(self, *, allow_private: bool) -> ProxyConfig:
        return ProxyConfig(
            host=self.host,
            port=int(self.port),
            username=self.username,
            password=self.password,
            allow_private=allow_private,
        )


ProxyName = Annotated[
    str,
    Field(
        pattern=PROXY_NAME_PATTERN,
        description="The name of one of the server's proxies (MXPROBE_PROXIES)",
    ),
]

_PROXY_NAME = re.compile(PROXY_NAME_PATTERN)


def _proxy_shape(value: object) -> object:
    """A name, or a ProxyIn (validated here, so an error names `proxy.port`, not a member of
    the union)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not _PROXY_NAME.fullmatch(value):
            raise ValueError(
                "a proxy name is 1 to 64 letters, digits, '.', '_' or '-' (one of the "
                "server's MXPROBE_PROXIES)"
            )
        return value
    if isinstance(value, dict | ProxyIn):
        return ProxyIn.model_validate(value)
    raise ValueError(
        'must be the name of one of the server\'s proxies ("eu") or an object '
        '{"host", "port", "username", "password"}'
    )


ProxyChoice = Annotated[ProxyIn | ProxyName | None, BeforeValidator(_proxy_shape)]
"""`"proxy"`: a name of the server's proxies, or a free-form proxy object."""


Policy = Literal["none", "trusted_providers_only"]
"""A verdict policy (`app.engine.rules.trust.Policy`)."""


class ProbeOptions(BaseModel):
    """The options a check or a bulk job may override."""

    model_config = ConfigDict(extra="ignore")

    from_email: FromEmail | None = None
    hello_name: HelloName | None = None
    proxy: ProxyChoice = None
    smtp_port: Port | None = None
    smtp_ports: list[Port] | None = Field(default=None, min_length=1, max_length=10)
    fresh: bool = Field(
        default=False,
        strict=True,
        description="Probe now, even when the result cache holds a recent result (which the "
        "new one then replaces); a bulk job still reuses results probed since it began",
    )
    policy: Policy | None = Field(
        default=None,
        description="Ours: the verdict policy (default MXPROBE_POLICY); "
        "trusted_providers_only makes an address on a provider off the trusted list at best "
        "risky, with the reason in debug.policy",
    )

    @field_validator("from_email", "hello_name")
    @classmethod
    def _safe(cls, value: str | None) -> str | None:
        if value is not None and (
            has_control_chars(value)
            or not value.strip()
            or "<" in value
            or ">" in value
            or " " in value
        ):
            raise ValueError(
                "must be non-empty, without spaces, angle brackets or control characters"
            )
        return value

    def ports(self) -> tuple[int, ...] | None:
        if self.smtp_ports:
            return tuple(self.smtp_ports)
        if self.smtp_port:
            return (self.smtp_port,)
        return None


class CheckEmailIn(ProbeOptions):
    """Reacher's check request. Fields of Reacher's we do not use (`gmail_verif_method`, ...)
    are ignored, as are all unknown fields."""

    to_email: Address
