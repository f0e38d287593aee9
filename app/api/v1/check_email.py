"""`POST /v1/check_email`: Reacher's v1 name for `/v0/check_email`, the same request and
response (verified now, on the same per-MX budget as the workers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import AppSettings
from app.api.errors import ERROR_RESPONSES
from app.api.v0 import check_email as v0
from app.api.v0.schemas import CheckEmailIn

router = APIRouter()


@router.post("/v1/check_email", responses=ERROR_RESPONSES)
async def check_email_v1(
    body: CheckEmailIn, request: Request, settings: AppSettings
) -> dict[str, Any]:
    """As `POST /v0/check_email`."""
    return await v0.check_email(body, request, settings)
