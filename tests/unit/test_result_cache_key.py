"""The result cache's key (`app.cache.cache_key`), what may be cached (`cacheable`), and the
TTL setting's durations (`app.durations`): pure functions, no database."""

from __future__ import annotations

import pytest

from app.cache import cache_key, cacheable
from app.engine import CheckRequest, ProbeConfig, ProxyConfig, Reachable, Verification
from app.engine.check import syntax_of
from app.engine.model import (
    CheckEmailOutput,
    CoreError,
    DebugDetails,
    DebugSmtp,
    Duration,
    MiscDetails,
    MxDetails,
    SmtpDetails,
    SmtpError,
    VerifMethod,
)
from app.settings import Settings

CONFIG = ProbeConfig(hello_name="probe.test", from_email="me@probe.test", smtp_ports=(25,))


def key(to_email: str, **options: object) -> str:
    found = cache_key(CheckRequest(to_email=to_email, **options), CONFIG)  # type: ignore[arg-type]
    assert found is not None
    return found[0]


def test_the_domains_case_does_not_matter_and_the_local_parts_does() -> None:
    assert key("alice@Example.COM") == key("alice@example.com")
    assert key("Alice@example.com") != key("alice@example.com")
    assert cache_key(CheckRequest(to_email="alice@EXAMPLE.com"), CONFIG) == (
        key("alice@example.com"),
        "alice@example.com",
    )


def test_an_idn_domain_is_keyed_by_its_a_labels() -> None:
    assert key("alice@bücher.test") == key("alice@xn--bcher-kva.test")


@pytest.mark.parametrize(
    "options",
    [
        {"from_email": "other@probe.test"},
        {"hello_name": "other.test"},
        {"smtp_ports": (587,)},
        {"proxy": ProxyConfig(host="10.0.0.1", port=1080)},
        {"proxy": ProxyConfig(host="10.0.0.1", port=1080, username="u", password="p")},
        {"policy": "trusted_providers_only"},
        {"mx_hosts": ("mx.elsewhere.test",)},
    ],
)
def test_options_that_change_the_answer_change_the_key(options: dict[str, object]) -> None:
    assert key("alice@example.com", **options) != key("alice@example.com")


def test_the_servers_defaults_are_filled_in() -> None:
    assert key(
        "alice@example.com", from_email="me@probe.test", smtp_ports=(25,), policy="none"
    ) == key("alice@example.com")


def test_another_proxy_password_is_another_key_and_the_password_is_not_in_it() -> None:
    right = ProxyConfig(host="10.0.0.1", port=1080, username="u", password="right-pass")
    wrong = ProxyConfig(host="10.0.0.1", port=1080, username="u", password="wrong-pass")

    assert key("a@example.com", proxy=right) != key("a@example.com", proxy=wrong)
    assert "right-pass" not in key("a@example.com", proxy=right)


def test_invalid_syntax_has_no_key() -> None:
    assert cache_key(CheckRequest(to_email="not an email"), CONFIG) is None


def output(verdict: Reachable, *, smtp: SmtpDetails | SmtpError | None = None) -> CheckEmailOutput:
    return CheckEmailOutput(
        input="alice@example.com",
        is_reachable=verdict,
        misc=MiscDetails(),
        mx=MxDetails(accepts_mail=True, records=["mx.example.com."]),
        smtp=smtp or SmtpDetails(can_connect_smtp=True, is_deliverable=True),
        syntax=syntax_of("alice@example.com"),
        debug=DebugDetails(
            backend_name="mxprobe",
            start_time="2026-11-30T00:00:00Z",
            end_time="2026-11-30T00:00:00Z",
            duration=Duration(secs=0, nanos=0),
            smtp=DebugSmtp(verif_method=VerifMethod(type="Skipped")),
        ),
    )


@pytest.mark.parametrize(
    ("checked", "expected"),
    [
        (Verification(output(Reachable.SAFE), try_again=False), True),
        (Verification(output(Reachable.INVALID), try_again=False), True),
        (Verification(output(Reachable.RISKY), try_again=False), True),
        (Verification(output(Reachable.UNKNOWN), try_again=False), False),
        (Verification(output(Reachable.SAFE), try_again=True), False),
        (
            Verification(
                output(Reachable.INVALID, smtp=SmtpError(error=CoreError(type="X", message="x"))),
                try_again=False,
            ),
            False,
        ),
    ],
)
def test_only_definite_answers_without_errors_are_cached(
    checked: Verification, *, expected: bool
) -> None:
    assert cacheable(checked) is expected


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("0", 0.0),
        ("3600", 3600.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1.5h", 5400.0),
        ("1d", 86_400.0),
        ("2w", 1_209_600.0),
        ("P1D", 86_400.0),
        ("PT1H30M", 5400.0),
        ("01:00:00", 3600.0),
    ],
)
def test_the_ttl_takes_seconds_or_a_duration(given: str, seconds: float) -> None:
    assert Settings(result_cache_ttl=given).result_cache_ttl == seconds


@pytest.mark.parametrize("given", ["soon", "-1", "-1d", "inf", "1y"])
def test_a_ttl_that_is_no_duration_stops_the_start(given: str) -> None:
    with pytest.raises(ValueError, match="result_cache_ttl"):
        Settings(result_cache_ttl=given)


def test_the_ttl_defaults_to_a_day() -> None:
    assert Settings().result_cache_ttl == 86_400.0
