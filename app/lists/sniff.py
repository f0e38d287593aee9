"""Decide how a list is laid out from its first lines: delimiter, header, address column.

- **Delimiter**: each of ``,`` ``;`` and tab is tried. One that splits most rows into the same
  number (two or more) of cells is a candidate; among candidates the one whose rows hold a *clean*
  address cell (one ``@``, and no ``,`` ``;`` tab or quote, which a wrong delimiter leaves glued
  to a neighbour) most often wins, then the most consistent, then ``,`` over ``;`` over tab.
  No candidate: a plain list, one address per line.
- **Address column**: the first column whose header names it (`names_email`), else the first
  column holding at least half as many address-like cells (`looks_like_address`) as the column
  holding most.
- **Header**: the first row is a header when it names an email column, or when none of its cells
  looks like an address, later rows have addresses in that column, and its own cell there is
  neither empty nor shaped like a mistyped address (a ``@``, or a dotted host name such as
  ``jane.example.com``): a headerless file whose first address lacks its ``@`` keeps that row.
- No address-like cell in the rows looked at: `ListError`, so a caller refuses the file early.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from app.lists.records import RecordSplitter, cells
from app.lists.rows import ListError

SNIFF_LINES = 50
DELIMITERS = (",", ";", "\t")
EMAIL_HEADERS = frozenset({"email", "emailaddress", "mail", "mailaddress"})

_HEADER_NOISE = re.compile(r"[\s_\-]+")
_UNCLEAN = re.compile(r'[,;\t"]')
_HOST_NAME = re.compile(r"\S+\.[^\W\d_]{2,}")


@dataclass(frozen=True, slots=True)
class Layout:
    delimiter: str | None  # None: a plain list, one address per line
    header: bool  # the first non-blank row is a header, not data
    address_index: int  # the address cell's position in a row
    columns: tuple[str, ...]  # the names of the other cells, in file order


def names_email(cell: str) -> bool:
    """Email, E-mail, email address, E-Mail Address, mail, email_address, ... in any case."""
    return _HEADER_NOISE.sub("", cell).casefold() in EMAIL_HEADERS


def looks_like_address(cell: str) -> bool:
    """One ``@`` with something on each side."""
    at = cell.find("@")
    return 0 < at < len(cell) - 1 and cell.find("@", at + 1) < 0


def sniff(text: str, *, complete: bool) -> Layout:
    """The layout of the list that starts with ``text`` (all of it when ``complete``)."""
    candidates: list[tuple[tuple[int, int, int, int], str, list[list[str]]]] = []
    for order, delimiter in enumerate(DELIMITERS):
        rows = _rows(text, delimiter=delimiter, complete=complete)
        tally = Counter(len(row) for row in rows)
        if not tally:
            continue
        most = max(tally.values())
        width = min(w for w, count in tally.items() if count == most)
        if width < 2:
            continue
        clean = sum(1 for row in rows if any(_clean_address(cell) for cell in row))
        candidates.append(((clean, most, width, -order), delimiter, rows))
    if candidates:
        _, found, rows = max(candidates, key=lambda candidate: candidate[0])
        delimiter_or_none: str | None = found
    else:
        delimiter_or_none, rows = None, _rows(text, delimiter=None, complete=complete)
    if not rows:
        if complete:
            raise ListError("the list is empty")
        raise ListError(f"no complete line in the first {len(text)} characters of the list")
    if not any(looks_like_address(cell) for row in rows for cell in row):
        lines = f"{len(rows)} line" + ("s" if len(rows) != 1 else "")
        raise ListError(f"no email address found in the first {lines} of the list")
    return _layout(rows, delimiter=delimiter_or_none)


def _rows(text: str, *, delimiter: str | None, complete: bool) -> list[list[str]]:
    splitter = RecordSplitter(delimiter=delimiter, max_chars=len(text) + 1)
    records = splitter.feed(text)
    if complete:
        records += splitter.finish()
    rows: list[list[str]] = []
    for row in cells(records, delimiter=delimiter):
        if any(row):
            rows.append(row)
            if len(rows) == SNIFF_LINES:
                break
    return rows


def _layout(rows: list[list[str]], *, delimiter: str | None) -> Layout:
    first = rows[0]
    width = max(len(row) for row in rows)
    named = next((i for i, cell in enumerate(first) if names_email(cell)), None)
    if named is not None:
        index, header = named, True
    else:
        counts = [
            sum(1 for row in rows if i < len(row) and looks_like_address(row[i]))
            for i in range(width)
        ]
        top = max(counts)
        index = next(i for i, count in enumerate(counts) if count and 2 * count >= top)
        own = first[index] if index < len(first) else ""
        header = (
            bool(own)
            and not _maybe_address(own)
            and not any(looks_like_address(cell) for cell in first)
            and any(len(row) > index and looks_like_address(row[index]) for row in rows[1:])
        )
    if delimiter is None:
        columns: tuple[str, ...] = ()
    else:
        names = first if header else []
        columns = tuple(
            (names[i] if i < len(names) and names[i] else f"column_{i + 1}")
            for i in range(width)
            if i != index
        )
    return Layout(delimiter=delimiter, header=header, address_index=index, columns=columns)


def _clean_address(cell: str) -> bool:
    return looks_like_address(cell) and _UNCLEAN.search(cell) is None


def _maybe_address(cell: str) -> bool:
    return "@" in cell or _HOST_NAME.fullmatch(cell) is not None
