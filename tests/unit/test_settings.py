"""The one settings object: environment variables, parsed and validated at start-up."""

from __future__ import annotations

import pydantic
import pytest

from app.engine.config import ProxyConfig
from app.engine.rules.rates import Rate
from app.settings import Settings, parse_proxy_url


def test_defaults_are_safe_for_the_real_internet() -> None:
    settings = Settings()

    assert settings.smtp_ports == (25,)
    assert settings.allow_private_mx is False
    assert settings.dns_nameservers == ()
    assert settings.database_url is None


def test_environment_variables_use_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXPROBE_HELLO_NAME", "mta.example.net")
    monkeypatch.setenv("MXPROBE_FROM_EMAIL", "probe@example.net")
    monkeypatch.setenv("MXPROBE_SMTP_PORTS", "25, 587")
    monkeypatch.setenv("MXPROBE_DNS_NAMESERVERS", "127.0.0.53:5353,10.0.0.1")
    monkeypatch.setenv("MXPROBE_ALLOW_PRIVATE_MX", "true")
    monkeypatch.setenv("MXPROBE_CATCH_ALL_TTL", "60")
    monkeypatch.setenv("MXPROBE_GREYLIST_RETRY_DELAY", "90")
    monkeypatch.setenv("MXPROBE_GREYLIST_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("MXPROBE_CONNECT_TIMEOUT", "3")
    monkeypatch.setenv("MXPROBE_SMTP_TIMEOUT", "4")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@/db?host=/run/pg")

    settings = Settings()
    probe = settings.probe_config()

    assert settings.smtp_ports == (25, 587)
    assert settings.dns_config().nameservers == ("127.0.0.53:5353", "10.0.0.1")
    assert settings.database_url == "postgresql://u@/db?host=/run/pg"
    assert (probe.hello_name, probe.from_email) == ("mta.example.net", "probe@example.net")
    assert (probe.connect_timeout, probe.smtp_timeout) == (3, 4)
    assert probe.allow_private_mx is True
    assert probe.catch_all_ttl == 60
    assert (settings.greylist_retry_delay, settings.greylist_max_attempts) == (90, 4)


def test_json_lists_work_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXPROBE_SMTP_PORTS", "[2525, 25]")

    assert Settings().smtp_ports == (2525, 25)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MXPROBE_SMTP_PORTS", "0"),
        ("MXPROBE_SMTP_PORTS", "25,x"),
        ("MXPROBE_HELLO_NAME", "mta\r\nDATA"),
        ("MXPROBE_FROM_EMAIL", ""),
        ("MXPROBE_CONNECT_TIMEOUT", "-1"),
        ("MXPROBE_PROXY", "http://proxy:3128"),
        ("MXPROBE_GREYLIST_MAX_ATTEMPTS", "0"),
        ("MXPROBE_MX_RATE", "9/min"),
        ("MXPROBE_MX_RATE", "0/m"),
        ("MXPROBE_MX_LIMITS", '{"gmail": {"max_msg_rate": "9 per minute"}}'),
    ],
)
def test_bad_values_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises((pydantic.ValidationError, ValueError)):
        Settings()


def test_proxy_url_becomes_a_proxy_config() -> None:
    assert parse_proxy_url("socks5://us%40r:p%3Ass@proxy.test:1080") == ProxyConfig(
        host="proxy.test", port=1080, username="us@r", password="p:ss", allow_private=True
    )


def test_proxy_credentials_never_appear_in_output() -> None:
    proxy = parse_proxy_url("socks5://user:secret@proxy.test:1080")

    assert proxy.public() == {"host": "proxy.test", "port": 1080}
    assert "secret" not in repr(proxy)


def test_mx_limits_take_the_reacher_spec_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MXPROBE_MX_LIMITS",
        '{"gmail": {"max_smtp_out": 2, "max-msg-per-connection": 500,'
        ' "max-errors-per-connection": 3}, "MX.Example.TEST": {"max_smtp_out": 1}}',
    )

    settings = Settings()
    overrides = {o.key: o for o in settings.probe_config().mx_overrides}

    assert settings.session_limits() == {"gmail": 2, "mx.example.test": 1}
    assert overrides["gmail"].max_msg_per_connection == 500
    assert overrides["gmail"].max_errors_per_connection == 3


def test_unknown_mx_limit_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXPROBE_MX_LIMITS", '{"gmail": {"max_smtp": 2}}')

    with pytest.raises(pydantic.ValidationError):
        Settings()


def test_send_rates_are_unlimited_by_default() -> None:
    settings = Settings()

    assert settings.mx_rate is None
    assert settings.default_rate() is None
    assert settings.rate_limits() == {}


def test_send_rates_default_and_per_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXPROBE_MX_RATE", " 60 / m ")
    monkeypatch.setenv(
        "MXPROBE_MX_LIMITS",
        '{"Gmail": {"max_msg_rate": "9/m"}, "mx.example.test": {"max-msg-rate": "1/s"},'
        ' "yahoo": {"max_smtp_out": 1}}',
    )

    settings = Settings()

    assert settings.mx_rate == "60/m"
    assert settings.default_rate() == Rate(60, "m")
    assert settings.rate_limits() == {"gmail": Rate(9, "m"), "mx.example.test": Rate(1, "s")}
    assert settings.session_limits() == {"yahoo": 1}


def test_a_blank_rate_means_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXPROBE_MX_RATE", "")

    assert Settings().default_rate() is None
