"""Properties of reading generated tables: the email column is found, every row comes back in
order with its other cells, and how the bytes are cut into chunks changes nothing."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.lists import ListReader, Row, names_email, read_rows

LOCAL = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,8}", fullmatch=True)
DOMAIN = st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}\.[a-z]{2,4}", fullmatch=True)
ADDRESS = st.builds("{}@{}".format, LOCAL, DOMAIN)
# any text but an address: quotes, delimiters, line breaks, controls and non-ASCII included
CELL = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="@"), max_size=12
).filter(lambda cell: not names_email(cell))
# a header that names the email column, spelled as people do
EMAIL_NAME = st.builds(
    lambda spelling, case: case(spelling),
    st.sampled_from(
        ["email", "e-mail", "e_mail", "E mail", "mail", "email address", "e-mail address",
         "email_address", "E-Mail-Address", " Email ", "MAIL_ADDRESS"]
    ),
    st.sampled_from([str, str.lower, str.upper, str.title]),
)  # fmt: skip
# a header that does not: the column is then found by its values
OTHER_NAME = st.from_regex(r"[A-Za-z][A-Za-z ]{0,10}", fullmatch=True).filter(
    lambda name: not names_email(name)
)
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])


@dataclass
class Table:
    data: bytes
    columns: tuple[str, ...]
    rows: list[Row]


def quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


@st.composite
def tables(draw: st.DrawFn) -> Table:
    width = draw(st.integers(1, 5))
    at = draw(st.integers(0, width - 1))
    delimiter = draw(st.sampled_from([",", ";", "\t"])) if width > 1 else ""
    header = draw(st.booleans())
    named = draw(st.booleans())
    line_ends = draw(st.lists(LINE_ENDS, min_size=1, max_size=3))
    body = draw(
        st.lists(
            st.tuples(ADDRESS, st.lists(CELL, min_size=width - 1, max_size=width - 1)),
            min_size=1,
            max_size=20,
        )
    )

    def write(cell: str, *, address: bool) -> str:
        special = (delimiter and delimiter in cell) or any(c in cell for c in '"\r\n')
        if width == 1 or address:  # a plain list's line is raw or one quoted field
            return quote(cell) if draw(st.booleans()) else cell
        return quote(cell) if special or draw(st.booleans()) else cell

    lines: list[str] = []
    if header:
        names = draw(st.lists(CELL, min_size=width - 1, max_size=width - 1))
        if width == 1:
            names = []
        own = draw(EMAIL_NAME if named else OTHER_NAME)
        cells = [write(name, address=False) for name in names]
        cells.insert(at, write(own, address=width == 1))
        lines.append(delimiter.join(cells))
    for address, others in body:
        cells = [write(cell, address=False) for cell in others]
        cells.insert(at, write(address, address=True))
        lines.append(delimiter.join(cells))
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["", " ", " \t "])))
    text = "".join(line + draw(st.sampled_from(line_ends)) for line in lines)
    if not draw(st.booleans()):
        text = text.rstrip("\r\n")
    data = text.encode()
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.booleans()):
        data = gzip.compress(data)

    if width == 1:
        columns: tuple[str, ...] = ()
    elif header:
        full = [*names[:at], own, *names[at:]]
        columns = tuple(full[i].strip() or f"column_{i + 1}" for i in range(width) if i != at)
    else:
        columns = tuple(f"column_{i + 1}" for i in range(width) if i != at)
    rows = [Row(address, tuple(cell.strip() for cell in others)) for address, others in body]
    return Table(data, columns, rows)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables())
def test_the_email_column_and_every_row_are_found(table: Table) -> None:
    assert read_rows(table.data) == (table.columns, table.rows)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), data=st.data())
def test_chunks_cut_anywhere_read_like_the_whole_input(table: Table, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(table.data)), max_size=8)))
    reader = ListReader()
    rows: list[Row] = []
    for start, end in zip([0, *cuts], [*cuts, len(table.data)], strict=True):
        rows += reader.feed(table.data[start:end])
    rows += reader.close()
    assert (reader.columns, rows) == read_rows(table.data) == (table.columns, table.rows)
