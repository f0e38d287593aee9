"""Gzip, decompressed incrementally in bounded pieces (a gzip bomb never inflates at once)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from app.lists.rows import ListError

GZIP_MAGIC = b"\x1f\x8b"
PIECE = 64 * 1024  # at most this much decompressed output per step


class Inflater:
    """Decompress a gzip stream (members one after another, as ``gzip`` writes them).

    Anything after the last member that is not another member is ignored, as ``gzip -d`` does.
    """

    __slots__ = ("_member", "_pending", "_trailing")

    def __init__(self) -> None:
        self._member: zlib._Decompress | None = zlib.decompressobj(wbits=31)
        self._pending = b""  # fewer than 2 bytes after a member: another one may follow
        self._trailing = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed pieces of ``data``, each at most `PIECE` bytes."""
        data = self._pending + data
        self._pending = b""
        try:
            while not self._trailing:
                if self._member is None:
                    if len(data) < len(GZIP_MAGIC):
                        self._pending = data
                        return
                    if not data.startswith(GZIP_MAGIC):
                        self._trailing = True
                        return
                    self._member = zlib.decompressobj(wbits=31)
                member = self._member
                out = member.decompress(data, PIECE)
                if out:
                    yield out
                if member.eof:
                    data = member.unused_data
                    self._member = None
                else:
                    data = member.unconsumed_tail
                    if not data and len(out) < PIECE:
                        return  # else output is still held back: ask for it
        except zlib.error as exc:
            raise ListError(f"the gzip data is corrupt ({exc})") from exc

    def close(self) -> None:
        if self._member is not None:
            raise ListError("the gzip data ends early: the file is truncated")
