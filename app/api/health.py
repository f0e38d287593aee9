"""`GET /healthz`: the process is up and its database answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.errors import DATABASE_UNAVAILABLE, RETRY_AFTER

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.db_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure means "not healthy", said plainly (no driver's text)
        return JSONResponse(
            {"status": "unhealthy", "error": DATABASE_UNAVAILABLE},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER},
        )
    return JSONResponse({"status": "ok"})
