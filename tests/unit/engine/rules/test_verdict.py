"""The ``is_reachable`` verdict: Reacher's cases with our decisions, and our additions."""

from __future__ import annotations

import pytest

from app.engine.model import (
    CoreError,
    MiscDetails,
    MxDetails,
    MxError,
    Reachable,
    SmtpDetails,
    SmtpError,
)
from app.engine.rules.verdict import is_reachable

MX_OK = MxDetails(accepts_mail=True, records=["mx.example.com."])
NO_MX = MxDetails(accepts_mail=False, records=[])
MX_FAILED = MxError(error=CoreError(type="ResolveError", message="SERVFAIL"))
SMTP_FAILED = SmtpError(
    error=CoreError(type="AsyncSmtpError", message="transient: foobar"),
    description="IpBlacklisted",
)
PERSON = MiscDetails()
ROLE = MiscDetails(is_role_account=True)
DISPOSABLE = MiscDetails(is_disposable=True)
ROLE_AND_DISPOSABLE = MiscDetails(is_disposable=True, is_role_account=True)
B2C = MiscDetails(is_b2c=True)


def smtp(**flags: bool) -> SmtpDetails:
    return SmtpDetails(**{"can_connect_smtp": True, **flags})


DELIVERABLE = smtp(is_deliverable=True)
MISSING = smtp()

CASES = [
    # Reacher's cases
    pytest.param(False, None, None, PERSON, Reachable.INVALID, id="syntax-invalid"),
    pytest.param(True, NO_MX, None, PERSON, Reachable.INVALID, id="no-mx-records"),
    pytest.param(True, MX_FAILED, None, PERSON, Reachable.UNKNOWN, id="mx-resolver-error"),
    pytest.param(
        True,
        MX_OK,
        SMTP_FAILED,
        ROLE_AND_DISPOSABLE,
        Reachable.UNKNOWN,
        id="smtp-error-even-if-role-and-disposable",
    ),
    pytest.param(True, MX_OK, DELIVERABLE, ROLE, Reachable.RISKY, id="role-deliverable"),
    # Reacher: risky (risky beats invalid). Us: a missing mailbox is invalid, role or not.
    pytest.param(True, MX_OK, MISSING, ROLE, Reachable.INVALID, id="role-not-deliverable"),
    pytest.param(True, MX_OK, DELIVERABLE, DISPOSABLE, Reachable.RISKY, id="disposable"),
    pytest.param(
        True,
        MX_OK,
        smtp(is_deliverable=True, is_catch_all=True),
        PERSON,
        Reachable.RISKY,
        id="catch-all",
    ),
    pytest.param(True, MX_OK, smtp(has_full_inbox=True), PERSON, Reachable.RISKY, id="full-inbox"),
    pytest.param(True, MX_OK, smtp(is_disabled=True), PERSON, Reachable.INVALID, id="disabled"),
    pytest.param(True, MX_OK, MISSING, PERSON, Reachable.INVALID, id="mailbox-does-not-exist"),
    pytest.param(
        True,
        MX_OK,
        smtp(is_deliverable=True, is_disabled=True),
        PERSON,
        Reachable.INVALID,
        id="deliverable-but-disabled",
    ),
    pytest.param(True, MX_OK, DELIVERABLE, PERSON, Reachable.SAFE, id="all-good"),
    pytest.param(True, MX_OK, DELIVERABLE, B2C, Reachable.SAFE, id="b2c-does-not-matter"),
    # ours
    pytest.param(
        False, MX_OK, DELIVERABLE, PERSON, Reachable.INVALID, id="syntax-wins-over-everything"
    ),
    pytest.param(True, None, None, PERSON, Reachable.UNKNOWN, id="mx-not-looked-up"),
    pytest.param(
        True, NO_MX, DELIVERABLE, PERSON, Reachable.INVALID, id="null-mx-beats-a-stray-smtp-answer"
    ),
    pytest.param(True, MX_OK, None, PERSON, Reachable.UNKNOWN, id="smtp-not-probed"),
    pytest.param(
        True, MX_OK, SmtpDetails(), PERSON, Reachable.UNKNOWN, id="could-not-connect-says-nothing"
    ),
    pytest.param(
        True, MX_OK, MISSING, DISPOSABLE, Reachable.INVALID, id="disposable-not-deliverable"
    ),
    pytest.param(True, MX_OK, smtp(is_disabled=True), ROLE, Reachable.INVALID, id="role-disabled"),
    pytest.param(
        True,
        MX_OK,
        smtp(has_full_inbox=True, is_disabled=True),
        PERSON,
        Reachable.INVALID,
        id="disabled-beats-full-inbox",
    ),
    pytest.param(
        True, MX_OK, smtp(has_full_inbox=True), ROLE, Reachable.RISKY, id="role-full-inbox"
    ),
]


@pytest.mark.parametrize(("syntax_valid", "mx", "smtp_result", "misc", "expected"), CASES)
def test_is_reachable(syntax_valid, mx, smtp_result, misc, expected):
    verdict = is_reachable(syntax_valid=syntax_valid, mx=mx, smtp=smtp_result, misc=misc)
    assert verdict is expected
