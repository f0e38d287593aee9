"""uvicorn, as `mxprobe api` runs it: its own limits from the settings, plus two it lacks.

uvicorn closes a connection idle between requests (`timeout_keep_alive`) and caps connections
(`limit_concurrency`, 503 past it), but it has no deadline for a request's headers, and its
httptools protocol (the default when httptools is installed, as here) no limit on their size:
half-sent requests were held open for as long as their clients liked, and 20 MB of headers
were read into memory. `HeaderLimits` adds both to that protocol:

- a request's headers must be complete `header_timeout` seconds after its first byte (or after
  the connection opened): otherwise 408 and the connection is closed;
- the request line and headers may not exceed `max_header_bytes`: otherwise 431, closed.

The time a *body* may take is the API's own business (`app/api/limits.py`, 408 as well): it
is the same with any server. It subclasses uvicorn's protocol through its documented `http=`
option, overriding only the parser callbacks and asyncio.Protocol methods (no underscored
names); `tests/acceptance/test_slow_clients.py` fails if they stop being called.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import logs
from app.settings import Settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadersTooLarge(Exception):
    """Raised in a parser callback: httptools stops, uvicorn calls `send_400_response`."""


class HeaderLimits(HttpToolsProtocol):
    header_timeout: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_clock: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._headers_too_large = False

    @classmethod
    def configured(cls, *, header_timeout: float, max_header_bytes: int) -> type[HeaderLimits]:
        """This protocol with these limits (uvicorn wants a class, and makes one per connection)."""
        return type(
            "HeaderLimits",
            (cls,),
            {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
        )

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # (uvloop's transports are no asyncio.Transport)
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    # httptools' parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._start_header_clock()

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_header_clock()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._headers_too_large:
            self._answer(431, f"request headers are larger than {self.max_header_bytes} bytes")
        else:
            super().send_400_response(msg)

    # ours

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > self.max_header_bytes:
            self._headers_too_large = True
            raise _HeadersTooLarge

    def _start_header_clock(self) -> None:
        self._stop_header_clock()
        self._header_clock = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self._header_clock is not None:
            self._header_clock.cancel()
            self._header_clock = None

    def _headers_too_slow(self) -> None:
        self._header_clock = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self._answer(408, f"request headers not received within {self.header_timeout:g} s")
        else:  # a response of an earlier request is under way: cut it short
            self.transport.close()

    def _answer(self, status: int, message: str) -> None:
        """`{"error": message}` and close, without the application (no request was parsed)."""
        body = json.dumps({"error": message}).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        head += [b"%s: %s\r\n" % header for header in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def run(settings: Settings, *, host: str, port: int) -> None:
    """The API on `host:port` until SIGTERM or SIGINT."""
    uvicorn.run(
        "app.api.main:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=logs.config(log_format=settings.log_format, level=settings.log_level),
        http=HeaderLimits.configured(
            header_timeout=settings.http_header_timeout,
            max_header_bytes=settings.http_max_header_bytes,
        ),
        timeout_keep_alive=settings.http_keep_alive_timeout,
        limit_concurrency=settings.http_limit_concurrency,
    )
