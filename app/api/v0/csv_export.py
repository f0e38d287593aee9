"""A Reacher `CheckEmailOutput` (as JSON) → one row of the bulk spec's 18-column CSV. Pure.

Booleans are `true`/`false`; a missing value is an empty field; `mx.records` is one field, the
exchanges joined with "," (so the CSV writer quotes it); an `{"error": ...}` object becomes its
message.

The text is for spreadsheets, and the addresses in it come from whoever submitted the list, so:
- a cell starting with `=`, `+`, `-`, `@`, a tab or a CR gets a `'` in front (OWASP's rule
  against formula injection): `=HYPERLINK(...)@x.com` is shown as text, never evaluated. Any
  cell, not only `input`: `syntax.username` repeats the input, and error texts quote servers;
- lines end with `\\r\\n` (RFC 4180), so a CR or LF inside a value is quoted and stays in its
  field for every CSV reader.
The JSON download is left as stored: only the CSV is read by spreadsheets.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

HEADER: tuple[str, ...] = (
    "input",
    "is_reachable",
    "misc.is_disposable",
    "misc.is_role_account",
    "misc.error",
    "mx.accepts_mail",
    "mx.records",
    "mx.error",
    "smtp.can_connect_smtp",
    "smtp.has_full_inbox",
    "smtp.is_catch_all",
    "smtp.is_deliverable",
    "smtp.is_disabled",
    "smtp.error",
    "syntax.domain",
    "syntax.is_valid_syntax",
    "syntax.username",
    "syntax.error",
)

_SMTP_FLAGS = (
    "can_connect_smtp",
    "has_full_inbox",
    "is_catch_all",
    "is_deliverable",
    "is_disabled",
)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet may take for the start of a formula (OWASP, "CSV Injection")."""


def neutralised(text: str) -> str:
    """The text, with a `'` in front when a spreadsheet could read it as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def error_text(section: Mapping[str, Any]) -> str:
    """The message of a section's `{"error": {"type", "message"}}`, or "" when it has none."""
    error = section.get("error")
    if not error:
        return ""
    if not isinstance(error, Mapping):
        return str(error)
    message = error.get("message")
    kind = error.get("type") or "Error"
    if isinstance(message, str):
        return message
    if isinstance(message, Mapping) and set(message) == {"secs", "nanos"}:
        seconds = message["secs"] + message["nanos"] / 1e9
        return f"{kind}: {seconds:g}s"
    if message is None:
        return str(kind)
    return f"{kind}: {json.dumps(message, separators=(',', ':'))}"


def row(output: Mapping[str, Any]) -> list[str]:
    misc: Mapping[str, Any] = output.get("misc") or {}
    mx: Mapping[str, Any] = output.get("mx") or {}
    smtp: Mapping[str, Any] = output.get("smtp") or {}
    syntax: Mapping[str, Any] = output.get("syntax") or {}
    records = mx.get("records")
    cells = [
        cell(output.get("input")),
        cell(output.get("is_reachable")),
        cell(misc.get("is_disposable")),
        cell(misc.get("is_role_account")),
        error_text(misc),
        cell(mx.get("accepts_mail")),
        ",".join(records) if records is not None else "",
        error_text(mx),
        *(cell(smtp.get(flag)) for flag in _SMTP_FLAGS),
        error_text(smtp),
        cell(syntax.get("domain")),
        cell(syntax.get("is_valid_syntax")),
        cell(syntax.get("username")),
        error_text(syntax),
    ]
    return [neutralised(text) for text in cells]


def lines(rows: Iterable[Iterable[str]]) -> str:
    """CSV text for the given rows (the header is a row like any other)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def header(columns: Sequence[str] = ()) -> str:
    """The header line: a CSV input's own columns (if any), then the 18 result columns."""
    return lines([[*(neutralised(name) for name in columns), *HEADER]])


def encode(outputs: Iterable[Mapping[str, Any]]) -> str:
    """CSV text, without the header, one line per output."""
    return lines(row(output) for output in outputs)


def encode_with_cells(
    rows: Iterable[tuple[Sequence[str] | None, Mapping[str, Any]]], *, width: int
) -> str:
    """CSV text, one line per (the input row's other cells, its output): the cells first,
    padded to `width` columns."""
    return lines(
        [
            *(neutralised(text) for text in (cells or ())),
            *[""] * (width - len(cells or ())),
            *row(output),
        ]
        for cells, output in rows
    )
