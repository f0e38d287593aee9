"""Record boundaries agree with ``csv.reader`` on the whole text, however the text is cut."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.lists.records import RecordSplitter, cells, plain_cell
from app.lists.rows import ListError


def split(text: str, *, delimiter: str | None, cuts: list[int]) -> list[str]:
    splitter = RecordSplitter(delimiter=delimiter)
    records: list[str] = []
    start = 0
    for cut in [*sorted(cuts), len(text)]:
        records += splitter.feed(text[start:cut])
        start = cut
    return records + splitter.finish()


def reference(text: str, *, delimiter: str) -> list[list[str]]:
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=delimiter,
        quotechar='"',
        doublequote=True,
        skipinitialspace=True,
        strict=False,
    )
    return [[cell.strip() for cell in row] for row in reader if row]


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet='a b,;\t"\r\n@', max_size=60),
    delimiter=st.sampled_from([",", ";", "\t"]),
    data=st.data(),
)
def test_records_read_like_csv_reader_on_the_whole_text(text, delimiter, data) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=6))
    records = split(text, delimiter=delimiter, cuts=cuts)
    assert list(cells(records, delimiter=delimiter)) == reference(text, delimiter=delimiter)


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet='a b,"\r\n', max_size=40), data=st.data())
def test_a_plain_list_is_cut_at_every_line_break_and_nowhere_else(text, data) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=6))
    expected = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line]
    assert split(text, delimiter=None, cuts=cuts) == expected


@pytest.mark.parametrize(
    ("text", "records"),
    [
        ('a,"b\nc"\nd', ['a,"b\nc"', "d"]),
        ('a,b"c\nd', ['a,b"c', "d"]),  # a quote inside a field is a plain character
        ('a, "b\nc"\nd', ['a, "b\nc"', "d"]),  # leading spaces: still a field's start
        ('"a""\nb"\nc', ['"a""\nb"', "c"]),  # a doubled quote stays inside the field
        ('"a"b"\nc', ['"a"b"', "c"]),  # after the closing quote the field goes on unquoted
        ("a\r\n\r\nb\rc\n", ["a", "b", "c"]),
    ],
)
def test_record_boundaries(text: str, records: list[str]) -> None:
    assert split(text, delimiter=",", cuts=[]) == records
    assert split(text, delimiter=",", cuts=list(range(len(text)))) == records


def test_a_crlf_cut_between_its_two_characters_is_one_line_break() -> None:
    splitter = RecordSplitter(delimiter=",")
    assert splitter.feed("a\r") == ["a"]
    assert splitter.feed("\nb\r") == ["b"]
    assert splitter.feed("\n") == []
    assert splitter.record_line == 3


def test_a_quote_never_closed_is_refused_once_the_record_passes_the_limit() -> None:
    splitter = RecordSplitter(delimiter=",", max_chars=100)
    assert splitter.feed("a@example.com\n") == ["a@example.com"]
    splitter.feed('"never closed\n')
    with pytest.raises(ListError, match=r"^line 2 is longer than 100 characters \(a quoted"):
        splitter.feed("more text\n" * 20)


def test_a_quote_left_open_at_the_end_closes_there_as_in_csv() -> None:
    records = split('a@example.com,"open\nb', delimiter=",", cuts=[3, 17])
    assert list(cells(records, delimiter=",")) == [["a@example.com", "open\nb"]]


@pytest.mark.parametrize(
    ("line", "cell"),
    [
        ("  a@example.com \t", "a@example.com"),
        ('"a@example.com"', "a@example.com"),
        ('" a@example.com "', "a@example.com"),
        ('"say ""hi"""', 'say "hi"'),
        ('"a"b"', '"a"b"'),  # not one quoted field: kept as read
        ('o"brien@example.com', 'o"brien@example.com'),
        ('"', '"'),
    ],
)
def test_plain_cell(line: str, cell: str) -> None:
    assert plain_cell(line) == cell
