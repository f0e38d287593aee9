"""`MXPROBE_HEADER_SECRET`: every route but the open ones needs header `x-reacher-secret`.

Open: `/healthz` and `/version`, the API's documentation (`/docs`, its OAuth2 redirect,
`/redoc`, `/openapi.json`) and the web page (`/`, `/jobs`, `/jobs/...`, `/static/...`: its
scripts ask for the secret), which hold no data. Pure ASGI middleware, outside the routes, so
an unknown path is a 401 too (nothing about the routes is told to a caller without the secret).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

HEADER = "x-reacher-secret"


class HeaderSecret:
    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str,
        open_paths: Iterable[str],
        open_prefixes: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.secret = secret.encode()
        self.open_paths = frozenset(open_paths)
        self.open_prefixes = tuple(open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in self.open_paths
            or (self.open_prefixes and path.startswith(self.open_prefixes))
        ):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(HEADER)
        if given is None:
            await _unauthorised(send, f"missing {HEADER} header")
        elif not hmac.compare_digest(given.encode("latin-1"), self.secret):
            await _unauthorised(send, f"invalid {HEADER} header")
        else:
            await self.app(scope, receive, send)


async def _unauthorised(send: Send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
