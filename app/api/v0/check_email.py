"""`POST /v0/check_email`: one address, verified now (or a recent result of it, `app.cache`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app import logs, metrics
from app.api.deps import AppSettings
from app.api.errors import ERROR_RESPONSES
from app.api.v0 import proxies
from app.api.v0.schemas import CheckEmailIn
from app.cache import ResultCache
from app.engine import CheckRequest, Verifier

router = APIRouter()


@router.post("/v0/check_email", responses=ERROR_RESPONSES)
async def check_email(
    body: CheckEmailIn, request: Request, settings: AppSettings
) -> dict[str, Any]:
    verifier: Verifier = request.app.state.verifier
    results = ResultCache.from_settings(settings, request.app.state.sessionmaker)
    checked = await results.verify(
        verifier,
        CheckRequest(
            to_email=body.to_email,
            from_email=body.from_email,
            hello_name=body.hello_name,
            proxy=proxies.for_check(body.proxy, settings=settings),
            smtp_ports=body.ports(),
            policy=body.policy,
        ),
        fresh=body.fresh,
    )
    metrics.count_check(checked.output)
    logs.verification(checked.output)
    return checked.output.to_json()
