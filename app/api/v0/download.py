"""`GET /v0/bulk/{job_id}/download` (also `/result` and `/results`): every row's result, in
input order, as JSON `{"results": [...]}` or, with `?format=csv`, as the spec's CSV (safe to
open in a spreadsheet: see `csv_export`). `{job_id}` is the job's id or its token.

Streamed from a server-side cursor: the handler checks the job, returns, and the body is read
from the database while it is sent, in batches; memory stays flat for a million rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app import bulk
from app.api.deps import DbSession, SessionFactory
from app.api.v0 import csv_export
from app.api.v0.bulk import BULK_RESPONSES, JobInPath

router = APIRouter()

BATCH_SIZE = 1000

DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One CheckEmailOutput per input row, in input order",
        "content": {"application/json": {}, "text/csv": {}},
    },
    **BULK_RESPONSES,
}


async def json_body(
    factory: bulk.SessionFactory, job_id: int, *, batch_size: int = BATCH_SIZE
) -> AsyncIterator[bytes]:
    """`{"results":[` + the stored JSON texts, comma-separated + `]}`: no re-encoding."""
    yield b'{"results":['
    separator = b""
    async for batch in bulk.stream_json(factory, job_id, batch_size=batch_size):
        yield separator + ",".join(batch).encode()
        separator = b","
    yield b"]}"


async def csv_body(
    factory: bulk.SessionFactory, job_id: int, *, batch_size: int = BATCH_SIZE
) -> AsyncIterator[bytes]:
    yield csv_export.header().encode()
    async for batch in bulk.stream_outputs(factory, job_id, batch_size=batch_size):
        yield csv_export.encode(batch).encode()


@router.get("/v0/bulk/{job_id}/download", responses=DOWNLOAD_RESPONSES)
@router.get("/v0/bulk/{job_id}/result", responses=DOWNLOAD_RESPONSES)
@router.get("/v0/bulk/{job_id}/results", responses=DOWNLOAD_RESPONSES)
async def download_bulk_results(
    job: JobInPath,
    session: DbSession,
    factory: SessionFactory,
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
) -> StreamingResponse:
    """A complete job's results; a cancelled job's results so far. Running: 409."""
    job_id = (await bulk.downloadable(session, job)).job_id
    if format == "csv":
        return StreamingResponse(
            csv_body(factory, job_id),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="bulk-{job_id}.csv"'},
        )
    return StreamingResponse(json_body(factory, job_id), media_type="application/json")
