"""Reacher's request bodies, validated strictly enough that nothing unsafe reaches the engine."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from app.engine.config import ProxyConfig
from app.engine.rules.syntax import has_control_chars

Port = Annotated[StrictInt, Field(ge=1, le=65535)]


class ProxyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: Port | Annotated[str, Field(pattern=r"^\d{1,5}$")]
    username: str | None = None
    password: str | None = None

    @field_validator("host", "username", "password")
    @classmethod
    def _no_control_chars(cls, value: str | None) -> str | None:
        if value is not None and has_control_chars(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("port")
    @classmethod
    def _port_number(cls, value: int | str) -> int:
        number = int(value)
        if not 0 < number < 65536:
            raise ValueError("must be between 1 and 65535")
        return number

    def to_config(self) -> ProxyConfig:
        return ProxyConfig(
            host=self.host, port=int(self.port), username=self.username, password=self.password
        )


class ProbeOptions(BaseModel):
    """The options a check or a bulk job may override."""

    model_config = ConfigDict(extra="ignore")

    from_email: str | None = Field(default=None, max_length=254)
    hello_name: str | None = Field(default=None, max_length=253)
    proxy: ProxyIn | None = None
    smtp_port: Port | None = None
    smtp_ports: list[Port] | None = Field(default=None, min_length=1, max_length=10)

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
    to_email: str = ""

    @model_validator(mode="after")
    def _required(self) -> CheckEmailIn:
        if not self.to_email:
            raise ValueError("to_email field is required.")
        return self
