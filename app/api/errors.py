"""Every error becomes Reacher's `{"error": "..."}` with the right status, in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import bulk
from app.outage import is_outage

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


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Bad request",
        "content": {"application/json": {"example": {"error": "..."}}},
    },
    404: {
        "description": "Not found",
        "content": {"application/json": {"example": {"error": "..."}}},
    },
    422: {
        "description": "Invalid body",
        "content": {"application/json": {"example": {"error": "..."}}},
    },
    503: {
        "description": "The database is unreachable for now (a restart): try again",
        "content": {"application/json": {"example": {"error": DATABASE_UNAVAILABLE}}},
    },
}


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            return "request body is not valid JSON"
        if err.get("type") == "missing" and where:
            parts.append(f"{where} field is required.")
        else:
            parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


def _status_of(exc: bulk.BulkError) -> int:
    """The bulk use cases' errors, as HTTP statuses."""
    if isinstance(exc, bulk.JobNotFound):
        return 404
    if isinstance(exc, bulk.JobNotFinished):
        return 409
    if isinstance(exc, bulk.TooManyEmails):
        return 413
    return 400


def install(app: FastAPI) -> None:
    async def on_bulk_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, bulk.BulkError)
        return JSONResponse({"error": str(exc)}, status_code=_status_of(exc))

    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse({"error": exc.message}, status_code=exc.status_code)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"error": _describe(exc)}, status_code=400)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):  # PostgreSQL restarting or down: not our bug, and it passes
            return JSONResponse(
                {"error": DATABASE_UNAVAILABLE},
                status_code=503,
                headers={"Retry-After": RETRY_AFTER},
            )
        return JSONResponse({"error": "internal server error"}, status_code=500)

    app.add_exception_handler(bulk.BulkError, on_bulk_error)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
