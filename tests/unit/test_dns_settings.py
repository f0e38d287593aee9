"""MXPROBE_DNS_TIMEOUT and MXPROBE_DNS_TRIES reach the resolver's configuration."""

from __future__ import annotations

import pydantic
import pytest

from app.engine.config import DnsConfig
from app.settings import Settings


def test_by_default_each_query_is_tried_twice_for_5_seconds() -> None:
    config = Settings().dns_config()

    assert (config.timeout, config.tries) == (5.0, 2)


def test_timeout_and_tries_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXPROBE_DNS_NAMESERVERS", "127.0.0.53:5353")
    monkeypatch.setenv("MXPROBE_DNS_TIMEOUT", "1.5")
    monkeypatch.setenv("MXPROBE_DNS_TRIES", "3")

    assert Settings().dns_config() == DnsConfig(
        nameservers=("127.0.0.53:5353",), timeout=1.5, tries=3
    )


@pytest.mark.parametrize(("name", "value"), [("DNS_TRIES", "0"), ("DNS_TIMEOUT", "0")])
def test_a_query_needs_a_try_and_some_time(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"MXPROBE_{name}", value)

    with pytest.raises(pydantic.ValidationError, match=name.lower()):
        Settings()
