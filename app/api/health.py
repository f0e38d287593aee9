"""`GET /healthz`: the process is up and its database answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.db_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not healthy", said plainly
        return JSONResponse({"status": "unhealthy", "error": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})
