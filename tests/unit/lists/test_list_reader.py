"""Reading whole lists, fed one byte, seven bytes or all at once."""

from __future__ import annotations

import codecs
import gc
import gzip
import time
import tracemalloc
import zlib

import pytest

import app.lists
from app.lists import ListError, ListReader, Row, read_rows
from app.lists.inflate import PIECE
from app.lists.reader import SNIFF_BYTES

CHUNKS = [1, 7, None]


def read(
    data: bytes, chunk: int | None, *, max_bytes: int | None = None
) -> tuple[tuple[str, ...] | None, list[Row]]:
    reader = ListReader(max_bytes=max_bytes)
    rows: list[Row] = []
    size = chunk or max(len(data), 1)
    for start in range(0, len(data), size):
        rows += reader.feed(data[start : start + size])
    rows += reader.close()
    assert (reader.columns, rows) == read_rows(data, max_bytes=max_bytes)
    return reader.columns, rows


def feed_each(reader: ListReader, chunks: list[bytes]) -> None:
    for chunk in chunks:
        assert reader.feed(chunk) == []


def plain(*addresses: str) -> list[Row]:
    return [Row(address) for address in addresses]


CASES = {
    "newline list": (
        b"a@example.com\nb@example.com\n",
        (),
        plain("a@example.com", "b@example.com"),
    ),
    "no final line break": (
        b"a@example.com\nb@example.com",
        (),
        plain("a@example.com", "b@example.com"),
    ),
    "CRLF": (b"a@example.com\r\nb@example.com\r\n", (), plain("a@example.com", "b@example.com")),
    "CR": (b"a@example.com\rb@example.com\r", (), plain("a@example.com", "b@example.com")),
    "blank lines skipped, others kept as read": (
        b"\n  a@example.com  \n\r\n \t \nnot an address\n\nb@example.com\n\n",
        (),
        plain("a@example.com", "not an address", "b@example.com"),
    ),
    "plain list with a header": (b"E-Mail\na@example.com\n", (), plain("a@example.com")),
    "plain list, quoted lines": (
        b'"a@example.com"\n"b@example.com"\n',
        (),
        plain("a@example.com", "b@example.com"),
    ),
    "a stray quote in a plain list joins no lines": (
        b'"o@example.com\nb@example.com\n',
        (),
        plain('"o@example.com', "b@example.com"),
    ),
    "CSV with a header": (
        b"Name,Email Address,City\nJane,jane@example.com,Paris\nBob,bob@example,Rome\n",
        ("Name", "City"),
        [Row("jane@example.com", ("Jane", "Paris")), Row("bob@example", ("Bob", "Rome"))],
    ),
    "CSV without a header": (
        b"Jane,jane@example.com\nBob,bob@example.com\n",
        ("column_1",),
        [Row("jane@example.com", ("Jane",)), Row("bob@example.com", ("Bob",))],
    ),
    "CSV header by shape, invalid rows kept": (
        b"Name;Contact\nJane;jane@example.com\nBob;\nAl;al at example\n",
        ("Name",),
        [Row("jane@example.com", ("Jane",)), Row("", ("Bob",)), Row("al at example", ("Al",))],
    ),
    "headerless, first address mistyped": (
        b"jane.example.com,Jane\nbob@example.com,Bob\n",
        ("column_2",),
        [Row("jane.example.com", ("Jane",)), Row("bob@example.com", ("Bob",))],
    ),
    "semicolons": (
        b"email;name\na@example.com;Doe, Jane\n",
        ("name",),
        [Row("a@example.com", ("Doe, Jane",))],
    ),
    "tabs": (b"name\temail\nJane\ta@example.com\n", ("name",), [Row("a@example.com", ("Jane",))]),
    "quoted fields": (
        b'email,note\r\n"a@example.com","one, ""two""\r\nthree"\r\n b@example.com , "x\ny" \r\n',
        ("note",),
        [Row("a@example.com", ('one, "two"\r\nthree',)), Row("b@example.com", ("x\ny",))],
    ),
    "a quote inside a field is a character": (
        b'email,name\na@example.com,O"Brien\nb@example.com,Roe\n',
        ("name",),
        [Row("a@example.com", ('O"Brien',)), Row("b@example.com", ("Roe",))],
    ),
    "a quote left open at the end closes there": (
        b'email,note\na@example.com,"open\nb@example.com,x\n',
        ("note",),
        [Row("a@example.com", ("open\nb@example.com,x",))],
    ),
    "UTF-8 BOM": (
        b"\xef\xbb\xbfEmail,Nom\r\na@example.com,J\xc3\xa9r\xc3\xb4me\r\n",
        ("Nom",),
        [Row("a@example.com", ("Jérôme",))],
    ),
    "UTF-16 with a BOM, tabs (Excel's Unicode text)": (
        "Email\tNom\r\na@example.com\tJérôme\r\n".encode("utf-16"),
        ("Nom",),
        [Row("a@example.com", ("Jérôme",))],
    ),
    "UTF-16 big-endian": (
        codecs.BOM_UTF16_BE + "a@example.com\n€@example.com\n".encode("utf-16-be"),
        (),
        plain("a@example.com", "€@example.com"),
    ),
    "Windows-1252": (
        "Email;Nom\r\na@example.com;Jérôme\r\n".encode("cp1252"),
        ("Nom",),
        [Row("a@example.com", ("Jérôme",))],
    ),
    "blank CSV rows skipped": (
        b"email,name\n,\na@example.com,Jane\n , \n\n",
        ("name",),
        [Row("a@example.com", ("Jane",))],
    ),
    "ragged rows": (
        b"email,a,b\nx@example.com\ny@example.com,1,2,3\nz@example.com,1,2\n",
        ("a", "b", "column_4"),
        [
            Row("x@example.com", ("", "", "")),
            Row("y@example.com", ("1", "2", "3")),
            Row("z@example.com", ("1", "2", "")),
        ],
    ),
    "gzip": (
        gzip.compress(b"email,name\na@example.com,Jane\n"),
        ("name",),
        [Row("a@example.com", ("Jane",))],
    ),
    "gzip, two members and trailing zeros": (
        gzip.compress(b"a@example.com\nb@exa") + gzip.compress(b"mple.com\n") + b"\0\0\0",
        (),
        plain("a@example.com", "b@example.com"),
    ),
    "gzip of a BOM and CRLF": (
        gzip.compress(b"\xef\xbb\xbfa@example.com\r\nb@example.com\r\n"),
        (),
        plain("a@example.com", "b@example.com"),
    ),
}


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(("data", "columns", "rows"), list(CASES.values()), ids=list(CASES))
def test_reads(data: bytes, columns: tuple[str, ...], rows: list[Row], chunk: int | None) -> None:
    assert read(data, chunk) == (columns, rows)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_undecodable_bytes_after_the_lookahead_become_replacement_characters(chunk) -> None:
    head = b"".join(b"a%d@example.com\n" % i for i in range(100))
    _, rows = read(head + b"caf\xe9@example.com\n", chunk)
    assert len(rows) == 101
    assert rows[-1] == Row("caf\ufffd@example.com")


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"^the list is empty$"),
        (b"\n \r\n", r"^the list is empty$"),
        (b"\xef\xbb\xbf", r"^the list is empty$"),
        (b"name,phone\nJane,123\n", r"^no email address found in the first 2 lines of the list$"),
        (gzip.compress(b"no address\n"), r"^no email address found in the first 1 line of"),
        (gzip.compress(b"a@example.com\n")[:-5], r"^the gzip data ends early"),
        (b"\x1f\x8bnot gzip at all", r"^the gzip data is corrupt"),
    ],
)
def test_refuses(data: bytes, message: str, chunk: int | None) -> None:
    with pytest.raises(ListError, match=message):
        read(data, chunk)


def test_a_file_with_no_address_in_its_first_lines_is_refused_before_its_end() -> None:
    reader = ListReader()
    with pytest.raises(ListError, match=r"^no email address found in the first 50 lines"):
        feed_each(reader, [b"Jane Doe,12 Main Street\n"] * 1000)


def test_rows_come_before_the_end_once_the_first_lines_are_read() -> None:
    reader = ListReader()
    assert reader.columns is None
    assert reader.feed(b"email,name\r\n") == []
    assert reader.feed(b"a@example.com,Jane\r\n" * 48) == []
    assert reader.columns is None
    rows = reader.feed(b"\r\n\r\na@example.com,Jane\r\n")  # the 50th non-blank line
    assert reader.columns == ("name",)
    assert reader.layout is not None
    assert reader.layout.delimiter == ","
    assert (reader.encoding, reader.gzip) == ("utf-8", False)
    assert rows == [Row("a@example.com", ("Jane",))] * 49
    assert reader.close() == []


def test_cells_of_later_rows_beyond_the_columns_are_dropped() -> None:
    head = b"a@example.com,1\n" * 60
    columns, rows = read_rows(head + b"b@example.com,1,2\nc@example.com\n")
    assert columns == ("column_2",)
    assert rows[-2:] == [Row("b@example.com", ("1",)), Row("c@example.com", ("",))]


def test_a_long_first_line_is_refused_after_the_lookahead() -> None:
    reader = ListReader()
    with pytest.raises(ListError, match=r"^no complete line in the first 65536 characters"):
        feed_each(reader, [b"x" * 1024] * (SNIFF_BYTES // 1024 + 1))


def test_a_record_that_never_ends_is_refused() -> None:
    reader = ListReader()
    reader.feed(b"email,note\na@example.com,x\n" * 60)
    with pytest.raises(ListError, match=r"^line 121 is longer than 131072 characters \(a quoted"):
        reader.feed(b'b@example.com,"' + b"never closed\n" * 20_000)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_max_bytes_bounds_plain_input(chunk: int | None) -> None:
    data = b"a@example.com\n" * 10
    assert len(read(data, chunk, max_bytes=len(data))[1]) == 10
    with pytest.raises(ListError, match=f"^the list is larger than {len(data) - 1} bytes$"):
        read(data, chunk, max_bytes=len(data) - 1)


def test_a_gzip_bomb_is_stopped_at_max_bytes_of_text() -> None:
    packer = zlib.compressobj(9, wbits=31)
    block = b"\n" * 1_000_000
    bomb = packer.compress(b"a@example.com\n")
    bomb += b"".join(packer.compress(block) for _ in range(20)) + packer.flush()
    assert len(bomb) < 30_000  # 20 MB of text
    reader = ListReader(max_bytes=200_000)
    tracemalloc.start()
    try:
        with pytest.raises(ListError, match=r"^the list is larger than 200000 bytes once decomp"):
            reader.feed(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reader.bytes_read <= 200_000 + PIECE
    assert peak < 2_000_000


def test_bytes_read_counts_decompressed_bytes() -> None:
    text = b"a@example.com\n" * 1000
    reader = ListReader()
    reader.feed(gzip.compress(text))
    reader.close()
    assert reader.gzip is True
    assert reader.bytes_read == len(text)


def test_iter_feed_yields_a_compressed_chunk_piece_by_piece() -> None:
    text = b"".join(b"a%d@example.com\n" % i for i in range(50_000))
    reader = ListReader()
    rows = reader.iter_feed(zlib.compress(text, wbits=31))
    first = next(rows)
    assert first == Row("a0@example.com")
    with pytest.raises(RuntimeError, match="not exhausted"):
        reader.feed(b"")
    assert len(list(rows)) + 1 + len(reader.close()) == 50_000


def test_feed_after_close_is_an_error() -> None:
    reader = ListReader()
    reader.feed(b"a@example.com")
    assert reader.close() == [Row("a@example.com")]
    with pytest.raises(RuntimeError, match="closed"):
        reader.feed(b"b@example.com\n")


def read_flat(data: bytes) -> tuple[int, Row | None, int]:
    """Read ``data`` in 64 KiB chunks; the rows' count, the last row, and the peak memory."""
    reader = ListReader()
    count, last = 0, None
    gc.freeze()  # the test session's own objects: full collections need not walk them
    tracemalloc.start()
    try:
        for start in range(0, len(data), 65536):
            rows = reader.feed(data[start : start + 65536])
            count += len(rows)
            last = rows[-1] if rows else last
        rows = reader.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    count += len(rows)
    return count, rows[-1] if rows else last, peak


def test_a_million_lines_are_read_with_flat_memory() -> None:
    data = b"".join(b"user%d@example.com\n" % i for i in range(1_000_000))
    began = time.monotonic()
    count, last, peak = read_flat(data)
    assert (count, last) == (1_000_000, Row("user999999@example.com"))
    assert peak < 3_000_000, peak  # the input alone is 22 MB
    assert time.monotonic() - began < 30  # a guard against a quadratic path, not a benchmark


def test_a_csv_is_read_with_flat_memory() -> None:
    data = b"name,email\n" + b'"Doe, Jane",user@example.com\n' * 30_000
    count, last, peak = read_flat(data)
    assert (count, last) == (30_000, Row("user@example.com", ("Doe, Jane",)))
    assert peak < 3_000_000, peak  # all its rows at once would take 5 MB


def test_the_package_exports_what_it_documents() -> None:
    for name in app.lists.__all__:
        assert hasattr(app.lists, name), name
