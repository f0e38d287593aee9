"""Every error becomes Reacher's `{"error": "..."}` with the right status, in one place."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import bulk, imports
from app.outage import is_outage

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable"
RETRY_AFTER = "5"
"""Seconds a client is told to wait (`Retry-After`) while the database is unreachable."""


class ApiError(Exception):
    status_code = 400

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class ErrorBody(BaseModel):
    """Every error the API answers: Reacher's shape."""

    error: str = Field(description="What was wrong, in words")


def error_response(description: str) -> dict[str, Any]:
    """One entry of a route's `responses=`: `{"error": ...}` with this status."""
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_response("Invalid request: the error says what is wrong"),
    404: error_response("Not found"),
    503: {
        **error_response("The database is unreachable for now (a restart): try again"),
        "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}},
    },
}


def _where(loc: tuple[int | str, ...]) -> str:
    """`("body", "input", 3)` → `input[3]`; `("body", "proxy", "port")` → `proxy.port`."""
    where = ""
    for part in loc:
        if isinstance(part, int):
            where += f"[{part}]"
        elif part != "body" or where:
            where += f".{part}" if where else str(part)
    return where


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        kind = err.get("type")
        where = _where(tuple(err.get("loc", ())))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "string_unicode":  # pydantic's word for a lone surrogate, where it looks
            message = "is not valid Unicode (a lone surrogate)"
        if kind == "json_invalid":
            return "request body is not valid JSON"
        if not where and kind == "missing":
            return "request body is required: a JSON object"
        if not where and kind in ("model_attributes_type", "dict_type", "model_type"):
            return "request body must be a JSON object"
        if kind == "missing" or (
            kind == "string_too_short" and err.get("ctx", {}).get("min_length") == 1
        ):
            parts.append(f"{where} field is required.")
        else:
            parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


def _body_unreadable(exc: StarletteHTTPException) -> str | None:
    """FastAPI's one 400 for a body it could not decode, said more precisely."""
    if exc.status_code != 400:
        return None
    if isinstance(exc.__cause__, RecursionError):
        return "request body is not valid JSON: nested too deeply"
    if isinstance(exc.__cause__, UnicodeDecodeError):
        return "request body is not valid JSON: not UTF-8 text"
    if isinstance(exc.__cause__, ValueError):  # a number of 4,300 digits or more
        return "request body could not be read as JSON"
    return None


def error_json(
    message: str, *, status_code: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """`{"error": message}`; a message that quotes the request cannot fail to encode."""
    safe = message.encode("utf-8", "backslashreplace").decode()
    return JSONResponse({"error": safe}, status_code=status_code, headers=headers)


def _status_of(exc: bulk.BulkError) -> int:
    """The bulk use cases' errors, as HTTP statuses."""
    if isinstance(exc, bulk.JobNotFound):
        return 404
    if isinstance(exc, bulk.JobNotFinished):
        return 409
    if isinstance(exc, bulk.TooManyEmails):
        return 413
    if isinstance(exc, imports.RemoteListFailed):
        return exc.status
    return 400


def install(app: FastAPI) -> None:
    async def on_bulk_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, bulk.BulkError)
        return error_json(str(exc), status_code=_status_of(exc))

    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_json(exc.message, status_code=exc.status_code)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_json(_describe(exc), status_code=400)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = _body_unreadable(exc) or str(exc.detail)
        return error_json(message, status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A failure in a middleware outside `ErrorAnswers` (Starlette logs its traceback)."""
        if is_outage(exc):
            return _unexpected(exc, request.scope)
        return JSONResponse({"error": "internal server error"}, status_code=500)

    app.add_exception_handler(bulk.BulkError, on_bulk_error)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


class ErrorAnswers:
    """ASGI middleware, the innermost: a request that failed with an exception no handler
    took is answered here, as `{"error"}` JSON, inside the CORS middleware (so a page on
    another origin can read a 500 too, which Starlette's outermost error middleware would
    answer without CORS headers). PostgreSQL unreachable is 503 `database unavailable`,
    logged by the outage monitor rather than as a traceback per request (thousands of lines
    per restart); anything else is 500 `internal server error`, its traceback logged. An
    error after the response has started passes on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception as exc:
            if started:
                raise
            await _unexpected(exc, scope)(scope, receive, send)


def _unexpected(exc: Exception, scope: Scope) -> JSONResponse:
    if is_outage(exc):  # PostgreSQL restarting or down: not our bug, and it passes
        return JSONResponse(
            {"error": DATABASE_UNAVAILABLE},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER},
        )
    logger.error("%s %s failed", scope["method"], scope["path"], exc_info=exc)
    return JSONResponse({"error": "internal server error"}, status_code=500)
