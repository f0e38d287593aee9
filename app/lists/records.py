"""Cut decoded text into records, incrementally, and read their cells.

A plain list has one record per line and no quoting: a stray quote in it never joins lines (a
line that is one quoted field, ``"a@example.com"``, is unquoted). In a CSV a record ends at a
line break outside quotes. `RecordSplitter` only finds where records end, following the rules of
``csv.reader`` with the dialect below (a quote opens a quoted field only at the start of a field,
after a delimiter, a line break or leading spaces; inside one ``""`` is a quote and a lone ``"``
closes it, after which the field goes on unquoted and quotes are plain characters, so
``O"Brien`` does not swallow the lines that follow); the stdlib ``csv`` module reads the cells of
each complete record. Line ends are CRLF, LF or CR; empty records are dropped here.

Memory stays flat: the splitter keeps only the current partial record, and refuses one longer
than `MAX_RECORD_CHARS` (usually a quote that is never closed).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator

from app.lists.rows import ListError

MAX_RECORD_CHARS = 131_072  # csv.field_size_limit()'s default: no cell can be longer anyway

_BREAK = re.compile(r"\r\n|\r|\n")


class RecordSplitter:
    """Feed decoded text in pieces of any size; get back the records each piece completes."""

    __slots__ = (
        "_after_cr",
        "_at_field_start",
        "_breaks",
        "_delimiter",
        "_in_quotes",
        "_max_chars",
        "_parts",
        "_quote_pending",
        "_record_line",
        "_size",
    )

    def __init__(self, *, delimiter: str | None, max_chars: int = MAX_RECORD_CHARS) -> None:
        self._delimiter = delimiter  # None: a plain list
        self._max_chars = max_chars
        self._parts: list[str] = []  # the current record's text from earlier pieces
        self._size = 0
        self._in_quotes = False
        self._quote_pending = False  # a quote ended the last piece inside a quoted field
        self._at_field_start = True
        self._after_cr = False  # the last piece ended a record with CR: skip a leading LF
        self._breaks = 0
        self._record_line = 1

    @property
    def record_line(self) -> int:
        """The line the current (partial) record starts on, counting from 1."""
        return self._record_line

    def feed(self, text: str) -> list[str]:
        out: list[str] = []
        n = len(text)
        i = 0
        if self._after_cr and n:
            self._after_cr = False
            if text[0] == "\n":
                i = 1  # the LF of a CRLF cut in two
        start = i  # where the current record's text begins in `text`
        if self._delimiter is None:
            start = self._lines(text, i, n, start, out)
        else:
            while i < n:
                if self._in_quotes:
                    i = self._quoted(text, i, n)
                    continue
                quote = text.find('"', i)
                if quote < 0:
                    quote = n
                if quote > i:
                    start = self._lines(text, i, quote, start, out)
                if quote < n:
                    self._in_quotes = self._at_field_start
                    self._at_field_start = False
                i = quote + 1
        if start < n:
            self._keep(text[start:])
        return out

    def finish(self) -> list[str]:
        """The last record, at end of input (a quote still open there closes, as in ``csv``)."""
        record = "".join(self._parts)
        self._parts = []
        self._size = 0
        return [record] if record else []

    def _lines(self, text: str, i: int, j: int, start: int, out: list[str]) -> int:
        """Split ``text[i:j]``, which holds no quote that matters, at its line breaks."""
        if text.find("\n", i, j) >= 0 or text.find("\r", i, j) >= 0:
            pieces = _BREAK.split(text[i:j])
            first = text[start:i] + pieces[0]
            if self._parts:
                first = "".join(self._parts) + first
                self._parts = []
                self._size = 0
            if first:
                out.append(first)
            out.extend(filter(None, pieces[1:-1]))
            self._breaks += len(pieces) - 1
            self._record_line = self._breaks + 1
            start = j - len(pieces[-1])
            if j == len(text) and text[j - 1] == "\r":
                self._after_cr = True
        k = j
        while k > i and text[k - 1] == " ":
            k -= 1
        if k > i:
            self._at_field_start = text[k - 1] in (self._delimiter, "\r", "\n")
        return start

    def _quoted(self, text: str, i: int, n: int) -> int:
        """Move through a quoted field from ``text[i]``; return where to go on."""
        if self._quote_pending:
            self._quote_pending = False
            if text[i] == '"':
                return i + 1  # "" inside quotes
            self._in_quotes = False
            return i
        quote = text.find('"', i)
        end = n if quote < 0 else quote
        self._breaks += text.count("\n", i, end) + text.count("\r", i, end)
        self._breaks -= text.count("\r\n", i, end)
        if quote < 0:
            return n
        if quote + 1 == n:
            self._quote_pending = True
            return n
        if text[quote + 1] == '"':
            return quote + 2
        self._in_quotes = False
        return quote + 1

    def _keep(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size > self._max_chars:
            hint = " (a quoted field that is never closed?)" if self._in_quotes else ""
            raise ListError(
                f"line {self._record_line} is longer than {self._max_chars} characters{hint}"
            )


def plain_cell(line: str) -> str:
    """The address of a plain list's line: stripped, and unquoted when it is one quoted field."""
    cell = line.strip()
    if len(cell) >= 2 and cell[0] == '"' == cell[-1]:
        inner = cell[1:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"').strip()
    return cell


def cells(records: Iterable[str], *, delimiter: str | None) -> Iterator[list[str]]:
    """The stripped cells of each complete record (one cell per record for a plain list)."""
    if delimiter is None:
        for record in records:
            cell = record.strip()
            yield [plain_cell(cell) if cell[:1] == '"' else cell]
        return
    reader = csv.reader(
        records,
        delimiter=delimiter,
        quotechar='"',
        doublequote=True,
        skipinitialspace=True,
        strict=False,
    )
    try:
        for row in reader:
            yield [cell.strip() for cell in row]
    except csv.Error as exc:
        raise ListError(f"the CSV cannot be read: {exc}") from exc
