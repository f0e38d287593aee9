"""Request bodies, limited before anything parses them: in size, by route, and in the time they
may take to arrive. Pure ASGI middleware, so it sees the bytes as the server hands them over.

- A `Content-Length` over the route's limit is answered 413 at once, before any body is read.
- Whatever the header says (or with no header: a chunked body), the bytes are counted as they
  arrive, and the first one past the limit ends the request with the same 413.
- A body not complete `body_timeout` seconds after its request started is answered 408.

Both answers are `{"error": ...}` with `Connection: close`: the rest of the body is never read.
The server (uvicorn) never hands over more bytes than a `Content-Length` announces, so a
lying, smaller header only shortens the body (the JSON then fails to parse: 400).

FastAPI's own `max_body_size` is not used: on a route that does not read its body it answers a
text/plain 413, and it has no read timeout.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

CHECK_EMAIL_MAX_BYTES = 16 * 1024
"""`POST /v0/check_email`: one address and its options fit many times over."""

OTHER_MAX_BYTES = 4 * 1024
"""Every other route (none of them takes a body)."""

BULK_BYTES_PER_EMAIL = 64
"""`POST /v0/bulk` allows this many bytes per address of `MXPROBE_BULK_MAX_EMAILS` on average
(a JSON string with its quotes, comma and space; addresses average well under 30 characters)..."""

BULK_SLACK_BYTES = 64 * 1024
"""...plus this much for the options and white space."""


@dataclass(frozen=True)
class BodyLimits:
    """The largest request body, in bytes, of each route."""

    bulk: int
    check_email: int = CHECK_EMAIL_MAX_BYTES
    other: int = OTHER_MAX_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        bulk = settings.bulk_max_bytes or (
            settings.bulk_max_emails * BULK_BYTES_PER_EMAIL + BULK_SLACK_BYTES
        )
        return cls(bulk=bulk)

    def of(self, method: str, path: str) -> tuple[int, str]:
        """The limit of a request, and how to name it in the 413."""
        route = path.rstrip("/")
        if method == "POST" and route in ("/v0/check_email", "/v1/check_email"):
            return self.check_email, f"the limit of POST {route}"
        if method == "POST" and route in ("/v0/bulk", "/v1/bulk"):
            return self.bulk, f"the limit of POST {route} (MXPROBE_BULK_MAX_BYTES)"
        return self.other, f"the limit of {method} {route or '/'}"


class _Refused(Exception):
    """Raised to the application from `receive`: the body broke a limit, the answer is ours."""


@dataclass
class _Refusal:
    status: int
    message: str


async def _answer(send: Send, refusal: _Refusal) -> None:
    body = json.dumps({"error": refusal.message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Guard:
    """One request's `receive` and `send`, counting and timing the body."""

    def __init__(
        self, receive: Receive, send: Send, *, limit: int, named: str, body_timeout: float
    ) -> None:
        self._receive = receive
        self._send = send
        self._limit = limit
        self._named = named
        self._timeout = body_timeout
        self._deadline = asyncio.get_running_loop().time() + body_timeout
        self._received = 0
        self._body_complete = False
        self.refusal: _Refusal | None = None
        self.response_started = False

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise _Refused(self.refusal.message)
        if self._body_complete:  # later calls only wait for a disconnect: no deadline
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            return self._refuse(408, f"request body not received within {self._timeout:g} s")
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                return self._refuse(413, _too_large(self._limit, self._named))
            self._body_complete = not message.get("more_body", False)
        return message

    def _refuse(self, status: int, message: str) -> Message:
        self.refusal = _Refusal(status, message)
        raise _Refused(message)

    async def send(self, message: Message) -> None:
        if self.refusal is not None and not self.response_started:
            return  # the application's answer to our exception; ours goes out instead
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)


def _too_large(limit: int, named: str) -> str:
    return f"request body is larger than {limit} bytes, {named}"


class RequestLimits:
    """The ASGI middleware: `BodyLimits` by route and a deadline for the body."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits, body_timeout: float) -> None:
        self.app = app
        self.limits = limits
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]
        limit, named = self.limits.of(str(scope["method"]), path)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                await _answer(send, _Refusal(400, "invalid Content-Length header"))
                return
            if len(declared) > 18 or int(declared) > limit:
                await _answer(send, _Refusal(413, _too_large(limit, named)))
                return
        guard = _Guard(receive, send, limit=limit, named=named, body_timeout=self.body_timeout)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            if guard.refusal is None or guard.response_started:
                raise
        if guard.refusal is not None and not guard.response_started:
            await _answer(send, guard.refusal)
