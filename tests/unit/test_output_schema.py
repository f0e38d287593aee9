"""Our JSON schema of Reacher's CheckEmailOutput accepts Reacher's documented shapes and
refuses the departures we have shipped or could ship."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.schema import assert_reacher_output, output_errors

SAFE: dict[str, Any] = {
    "input": "alice@normal.test",
    "is_reachable": "safe",
    "misc": {
        "is_disposable": False,
        "is_role_account": False,
        "is_b2c": False,
        "gravatar_url": None,
        "haveibeenpwned": None,
    },
    "mx": {"accepts_mail": True, "records": ["mx.normal.test."]},
    "smtp": {
        "can_connect_smtp": True,
        "has_full_inbox": False,
        "is_catch_all": False,
        "is_deliverable": True,
        "is_disabled": False,
    },
    "syntax": {
        "address": "alice@normal.test",
        "domain": "normal.test",
        "is_valid_syntax": True,
        "username": "alice",
        "normalized_email": "alice@normal.test",
        "suggestion": None,
    },
    "debug": {
        "backend_name": "mxprobe",
        "start_time": "2024-05-01T12:00:00.123456Z",
        "end_time": "2024-05-01T12:00:00.223456Z",
        "duration": {"secs": 0, "nanos": 100000000},
        "smtp": {
            "verif_method": {
                "type": "Smtp",
                "host": "mx.normal.test.",
                "verif_method": {
                    "from_email": "verify@mxprobe.test",
                    "hello_name": "probe.mxprobe.test",
                    "proxy": None,
                    "smtp_port": 25,
                    "smtp_timeout": {"secs": 10, "nanos": 0},
                    "retries": 1,
                },
            }
        },
        "provider": None,
        "probe": {"category": "accept", "code": 250},
    },
}


def changed(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    result = copy.deepcopy(SAFE)
    edit(result)
    return result


def timeout_error(result: dict[str, Any]) -> None:
    result["is_reachable"] = "unknown"
    result["smtp"] = {"error": {"type": "Timeout", "message": "timed out after 10 s"}}


def invalid_syntax(result: dict[str, Any]) -> None:
    result["input"] = result["syntax"]["address"] = "not an email"
    result["is_reachable"] = "invalid"
    result["mx"] = {"accepts_mail": False, "records": []}
    result["syntax"].update(
        address=None, domain="", username="", normalized_email=None, is_valid_syntax=False
    )
    result["debug"]["smtp"]["verif_method"] = {"type": "Skipped"}


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: None,
        timeout_error,
        invalid_syntax,
        lambda r: r.update(
            mx={"error": {"type": "ServerFailure", "message": "SERVFAIL"}}, is_reachable="unknown"
        ),
        lambda r: r.update(
            smtp={
                "error": {"type": "AsyncSmtpError", "message": "permanent: 5.7.1 blocked"},
                "description": "IpBlacklisted",
            }
        ),
        lambda r: r["debug"]["smtp"]["verif_method"]["verif_method"].update(
            proxy={"host": "proxy.test", "port": 1080}
        ),
    ],
    ids=["safe", "smtp-timeout", "invalid-syntax", "mx-error", "ip-blocked", "proxy"],
)
def test_reachers_shapes_validate(edit: Callable[[dict[str, Any]], None]) -> None:
    assert_reacher_output(changed(edit))


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (
            lambda r: r.update(
                smtp={"error": {"type": "Timeout", "message": {"secs": 10, "nanos": 0}}}
            ),
            "smtp",
        ),
        (lambda r: r.update(mx={"error": {"type": "Timeout"}}), "mx"),
        (lambda r: r.update(is_reachable="deliverable"), "is_reachable"),
        (lambda r: r["smtp"].pop("is_disabled"), "smtp"),
        (lambda r: r["smtp"].update(description="Greylisted"), "smtp"),
        (lambda r: r["mx"].update(records=["mx.normal.test"]), "mx"),
        (lambda r: r["debug"]["duration"].update(secs=0.1), "debug/duration/secs"),
        (lambda r: r["debug"].pop("backend_name"), "debug"),
        (lambda r: r["syntax"].update(is_valid_syntax=False), "syntax"),
        (lambda r: r["misc"].pop("haveibeenpwned"), "misc"),
        (
            lambda r: r["debug"]["smtp"]["verif_method"]["verif_method"].update(
                proxy={"host": "proxy.test", "port": 1080, "password": "secret"}
            ),
            "debug/smtp/verif_method",
        ),
        (lambda r: r.update(extra=True), "(root)"),
    ],
    ids=[
        "error-message-object",
        "error-without-message",
        "verdict-outside-enum",
        "smtp-field-missing",
        "unknown-description",
        "record-without-trailing-dot",
        "duration-not-integer",
        "debug-without-backend",
        "invalid-syntax-with-address",
        "misc-field-missing",
        "proxy-credentials",
        "unknown-top-level-key",
    ],
)
def test_departures_are_refused(edit: Callable[[dict[str, Any]], None], where: str) -> None:
    problems = output_errors(changed(edit))

    assert problems
    assert problems[0].startswith((f"{where}:", f"{where}/")), problems


def test_key_order_is_reachers() -> None:
    result = changed(lambda r: None)
    reordered = {key: result[key] for key in reversed(list(result))}

    with pytest.raises(AssertionError, match="key order"):
        assert_reacher_output(reordered)
