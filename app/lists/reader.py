"""Read a list (one address per line, or a CSV) incrementally from bytes, with flat memory.

Bytes go through four stages:

1. **Gzip**: input starting with gzip's magic bytes is decompressed in pieces of at most 64 KiB,
   whatever ``Content-Encoding`` said. ``max_bytes`` bounds the decompressed size (`bytes_read`):
   passing it is a `ListError`, raised before more than 64 KiB beyond it is ever inflated.
2. **Lookahead**: bytes are held until `SNIFF_BYTES` (64 KiB) or `SNIFF_LINES` (50) non-blank
   lines (or the end) have arrived; then the encoding and the layout (`app.lists.sniff`) are
   decided once, from those bytes only (so never from how the input was cut into chunks), and
   `ListError` is raised if no address is found there.
3. **Decoding**: a UTF-8 BOM is dropped and means UTF-8; a UTF-16 BOM means UTF-16 (Excel's
   "Unicode text" export). Without one, the lookahead decides: UTF-8 when it is valid UTF-8,
   else Windows-1252 (what spreadsheets on Windows export), so the other columns come back
   readable. Bytes that the chosen encoding cannot decode later on become U+FFFD (an address
   holding one comes back invalid); decoding never fails.
4. **Records and rows** (`app.lists.records`): every non-blank data row becomes one `Row`, in
   file order, whether or not its address cell is an address. A row is blank when all its cells
   are empty or whitespace. Cells are stripped of surrounding whitespace. A plain list's line is
   taken whole (only a line that is one quoted field is unquoted). ``extra`` always has
   one cell per name in `columns`, which covers the widest row of the lookahead (header
   names, or ``column_N`` by position): shorter rows are padded with ``""``, and the cells of a
   later row beyond that width are dropped.

Memory: the lookahead, one partial record (at most 128 Ki characters) and the rows of the
current piece. `feed` returns all the rows of its chunk; `iter_feed` yields them piece by piece
(64 KiB of text at most), which bounds memory even for a highly compressed chunk.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from app.lists.inflate import GZIP_MAGIC, PIECE, Inflater
from app.lists.records import RecordSplitter, cells, plain_cell
from app.lists.rows import ListError, Row
from app.lists.sniff import SNIFF_LINES, Layout, sniff

SNIFF_BYTES = 64 * 1024
UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class ListReader:
    """Feed the bytes of a list in chunks of any size; get back its rows in file order.

    After a `ListError` the reader is spent. ``feed()`` after ``close()`` is a programming error.
    """

    def __init__(self, *, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self._max_bytes = max_bytes
        self._magic = b""  # the first bytes, until gzip or not is decided
        self._gzip: bool | None = None
        self._inflater: Inflater | None = None
        self._bytes_read = 0
        self._lookahead = bytearray()
        self._lookahead_lines = 0  # non-blank lines ended in the lookahead
        self._line_has_text = False  # the lookahead's unfinished line has a non-blank byte
        self._lookahead_end: int | None = None  # where its SNIFF_LINES-th non-blank line ends
        self._body: _Body | None = None  # once the lookahead is decided
        self._busy = False
        self._closed = False

    @property
    def columns(self) -> tuple[str, ...] | None:
        """The names of the `Row.extra` cells (header names, or ``column_N`` by position)."""
        return None if self._body is None else self._body.layout.columns

    @property
    def layout(self) -> Layout | None:
        """The delimiter (None: a plain list), header and address column, once known."""
        return None if self._body is None else self._body.layout

    @property
    def encoding(self) -> str | None:
        """``"utf-8"``, ``"utf-16"`` or ``"cp1252"``, once known."""
        return None if self._body is None else self._body.encoding

    @property
    def gzip(self) -> bool | None:
        """Whether the input is gzip, once its first two bytes have arrived."""
        return self._gzip

    @property
    def bytes_read(self) -> int:
        """The decoded (decompressed) bytes read so far."""
        return self._bytes_read

    def feed(self, chunk: bytes) -> list[Row]:
        """The rows completed by ``chunk`` (``[]`` while the layout is still being sniffed)."""
        return list(self.iter_feed(chunk))

    def iter_feed(self, chunk: bytes) -> Iterator[Row]:
        """Like `feed`, lazily: exhaust it before the next call (else that call raises)."""
        self._enter()
        for piece in self._pieces(chunk):
            yield from self._take(piece)
        self._busy = False

    def close(self) -> list[Row]:
        """The remaining rows, at the end of input."""
        self._enter()
        self._closed = True
        rows: list[Row] = []
        if self._gzip is None:
            for piece in self._pieces(b"", final=True):
                rows += self._take(piece)
        if self._inflater is not None:
            self._inflater.close()
        body = self._body
        if body is None:
            body = self._start(at_eof=True)
            rows += body.rows(bytes(self._lookahead), final=True)
            self._lookahead = bytearray()
        rows += body.rows(b"", final=True)
        self._busy = False
        return rows

    def _enter(self) -> None:
        if self._closed:
            raise RuntimeError("the list reader is closed")
        if self._busy:
            raise RuntimeError("the previous iter_feed() was not exhausted, or it failed")
        self._busy = True

    def _pieces(self, chunk: bytes, *, final: bool = False) -> Iterator[bytes]:
        if self._gzip is None:
            self._magic += chunk
            if len(self._magic) < len(GZIP_MAGIC) and not final:
                return
            chunk, self._magic = self._magic, b""
            self._gzip = chunk.startswith(GZIP_MAGIC)
            if self._gzip:
                self._inflater = Inflater()
        if self._inflater is not None:
            yield from self._inflater.feed(chunk)
        else:
            for start in range(0, len(chunk), PIECE):
                yield chunk[start : start + PIECE]

    def _take(self, piece: bytes) -> list[Row]:
        self._bytes_read += len(piece)
        if self._max_bytes is not None and self._bytes_read > self._max_bytes:
            once = " once decompressed" if self._gzip else ""
            raise ListError(f"the list is larger than {self._max_bytes} bytes{once}")
        if self._body is not None:
            return self._body.rows(piece)
        self._lookahead += piece
        self._count_lines(piece)
        if len(self._lookahead) < SNIFF_BYTES and self._lookahead_end is None:
            return []
        body = self._start(at_eof=False)
        rows = body.rows(bytes(self._lookahead))
        self._lookahead = bytearray()
        return rows

    def _count_lines(self, piece: bytes) -> None:
        """Note where the lookahead's `SNIFF_LINES`-th non-blank line ends, once it does."""
        offset = len(self._lookahead) - len(piece)
        start = 0
        for match in _LINE_BREAK.finditer(piece):
            if self._line_has_text or piece[start : match.start()].strip():
                self._lookahead_lines += 1
                if self._lookahead_lines == SNIFF_LINES:
                    self._lookahead_end = offset + match.end()
                    return
            self._line_has_text = False
            start = match.end()
        if piece[start:].strip():
            self._line_has_text = True

    def _start(self, *, at_eof: bool) -> _Body:
        """Decide the encoding and the layout from the lookahead (a BOM in it is dropped).

        What is decided depends only on the lookahead's first `SNIFF_LINES` non-blank lines or
        `SNIFF_BYTES` bytes, never on how the input was cut into chunks.
        """
        data = self._lookahead
        end = min(len(data), SNIFF_BYTES, self._lookahead_end or len(data))
        encoding = None
        if data.startswith(UTF8_BOM):
            del data[: len(UTF8_BOM)]
            end -= len(UTF8_BOM)
            encoding = "utf-8"
        elif data.startswith(UTF16_BOMS):
            encoding = "utf-16"  # its decoder reads the BOM for the byte order, and drops it
        whole = at_eof and end == len(data)
        if encoding is None:
            encoding = "utf-8" if _is_utf8(data[:end], final=whole) else "cp1252"
        head = _decoder(encoding).decode(data[:end], final=whole)
        self._body = _Body(sniff(head, complete=whole), encoding=encoding)
        return self._body


class _Body:
    """Bytes after the lookahead is decided, to rows: decoding, records, cells."""

    __slots__ = ("_decoder", "_header_pending", "_splitter", "encoding", "layout")

    def __init__(self, layout: Layout, *, encoding: str) -> None:
        self.layout = layout
        self.encoding = encoding
        self._decoder = _decoder(encoding)
        self._splitter = RecordSplitter(delimiter=layout.delimiter)
        self._header_pending = layout.header

    def rows(self, data: bytes, *, final: bool = False) -> list[Row]:
        records = self._splitter.feed(self._decoder.decode(data, final=final))
        if final:
            records += self._splitter.finish()
        if not records:
            return []
        if self.layout.delimiter is None:
            return self._plain(records)
        return self._csv(records)

    def _plain(self, records: list[str]) -> list[Row]:
        rows: list[Row] = []
        for record in records:
            address = record.strip()
            if address[:1] == '"':
                address = plain_cell(address)
            if not address:
                continue
            if self._header_pending:
                self._header_pending = False
                continue
            rows.append(Row(address))
        return rows

    def _csv(self, records: list[str]) -> list[Row]:
        rows: list[Row] = []
        index = self.layout.address_index
        width = len(self.layout.columns) + 1
        for row in cells(records, delimiter=self.layout.delimiter):
            if not any(row):
                continue
            if self._header_pending:
                self._header_pending = False
                continue
            if len(row) < width:
                row += [""] * (width - len(row))
            elif len(row) > width:
                del row[width:]
            address = row.pop(index)
            rows.append(Row(address, tuple(row)))
        return rows


def read_rows(
    data: bytes, *, max_bytes: int | None = None
) -> tuple[tuple[str, ...] | None, list[Row]]:
    """Read a whole list: its column names (as `ListReader.columns`) and its rows."""
    reader = ListReader(max_bytes=max_bytes)
    rows = reader.feed(data)
    rows += reader.close()
    return reader.columns, rows


def _decoder(encoding: str) -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder(encoding)(errors="replace")


def _is_utf8(data: bytes | bytearray, *, final: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")(errors="strict").decode(data, final=final)
    except UnicodeDecodeError:
        return False
    return True
