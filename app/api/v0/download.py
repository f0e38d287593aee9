"""`GET /v0/bulk/{job_id}/download` (also `/result` and `/results`): every row's result, in
input order, as JSON `{"results": [...]}` or, with `?format=csv`, as the spec's CSV (safe to
open in a spreadsheet: see `csv_export`). `{job_id}` is the job's id or its token.

Streamed from a server-side cursor: the handler checks the job, returns, and the body is read
from the database while it is sent, in batches; memory stays flat for a million rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

import orjson
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


async def json_body_with_cells(
    factory: bulk.SessionFactory,
    job_id: int,
    columns: Sequence[str],
    *,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[bytes]:
    """`json_body` for a job read from a CSV: each result starts with `"row"`, the input row's
    other cells by column name."""
    yield b'{"results":['
    separator = b""
    async for batch in bulk.stream_with_cells(factory, job_id, batch_size=batch_size):
        items = (
            orjson.dumps(
                {"row": dict(zip(columns, cells or (), strict=False)), **orjson.loads(output)}
            )
            for cells, output in batch
        )
        yield separator + b",".join(items)
        separator = b","
    yield b"]}"


async def csv_body_with_cells(
    factory: bulk.SessionFactory,
    job_id: int,
    columns: Sequence[str],
    *,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[bytes]:
    """`csv_body` for a job read from a CSV: the input's own columns come first."""
    yield csv_export.header(columns).encode()
    async for batch in bulk.stream_with_cells(factory, job_id, batch_size=batch_size):
        pairs = ((cells, orjson.loads(output)) for cells, output in batch)
        yield csv_export.encode_with_cells(pairs, width=len(columns)).encode()


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
    progress = await bulk.downloadable(session, job)
    job_id, columns = progress.job_id, progress.columns
    if format == "csv":
        return StreamingResponse(
            csv_body_with_cells(factory, job_id, columns) if columns else csv_body(factory, job_id),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="bulk-{job_id}.csv"'},
        )
    body = json_body_with_cells(factory, job_id, columns) if columns else json_body(factory, job_id)
    return StreamingResponse(body, media_type="application/json")
