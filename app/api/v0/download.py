"""`GET /v0/bulk/{job_id}/download` (also `/result` and `/results`): every row's result, in
input order, as JSON `{"results": [...]}` or, with `?format=csv`, as the spec's CSV (safe to
open in a spreadsheet: see `csv_export`). `{job_id}` is the job's id or its token.

`?limit=&offset=` (ours on v0; no default limit, as the spec's download holds every result):
one page, addressed by input row, so a page deep into a million-row job costs what the first
does (`app.db.results`).

Streamed from a server-side cursor: the handler checks the job, returns, and the body is read
from the database while it is sent, in batches; memory stays flat for a million rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
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

MAX_LIMIT = 1_000_000
"""The most rows one page may ask for (`limit`)."""

MAX_OFFSET = 2**31 - 1
"""The last input row a page may start at: the largest row position stored."""


@dataclass(frozen=True, slots=True)
class Page:
    """Which rows a download holds: from input row `start`, at most `limit` (None: all).

    `start` names an input row, not a count of rows returned: the rows of a cancelled job
    that were never verified are absent, so its pages may hold fewer rows than `limit`
    before the end, and the next page still starts at `start + limit`."""

    start: int = 0
    limit: int | None = None


ALL = Page()

LIMIT_DESCRIPTION = f"At most this many results (1 to {MAX_LIMIT})"
OFFSET_DESCRIPTION = (
    f"Start at this input row, counted from 0 (0 to {MAX_OFFSET}): the number of rows to skip"
)
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_DESCRIPTION)]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]

RESULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["results"],
    "properties": {
        "results": {
            "type": "array",
            "description": "One CheckEmailOutput per input row, in input order; a job read "
            'from a CSV puts its row\'s other cells first, as "row": {column: cell}',
            "items": {"type": "object"},
        }
    },
}
CSV_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "The bulk spec's CSV, a header line then one line per input row",
}

DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One CheckEmailOutput per input row, in input order",
        "content": {
            "application/json": {"schema": RESULTS_SCHEMA},
            "text/csv": {"schema": CSV_SCHEMA},
        },
        "headers": {
            "Content-Disposition": {
                "description": 'CSV only: attachment; filename="bulk-{job_id}.csv"',
                "schema": {"type": "string"},
            }
        },
    },
    **BULK_RESPONSES,
}


async def json_body(
    factory: bulk.SessionFactory,
    job_id: int,
    *,
    page: Page = ALL,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[bytes]:
    """`{"results":[` + the stored JSON texts, comma-separated + `]}`: no re-encoding."""
    yield b'{"results":['
    separator = b""
    async for batch in bulk.stream_json(
        factory, job_id, batch_size=batch_size, start=page.start, limit=page.limit
    ):
        yield separator + ",".join(batch).encode()
        separator = b","
    yield b"]}"


async def csv_body(
    factory: bulk.SessionFactory,
    job_id: int,
    *,
    page: Page = ALL,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[bytes]:
    yield csv_export.header().encode()
    async for batch in bulk.stream_outputs(
        factory, job_id, batch_size=batch_size, start=page.start, limit=page.limit
    ):
        yield csv_export.encode(batch).encode()


async def json_body_with_cells(
    factory: bulk.SessionFactory,
    job_id: int,
    columns: Sequence[str],
    *,
    page: Page = ALL,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[bytes]:
    """`json_body` for a job read from a CSV: each result starts with `"row"`, the input row's
    other cells by column name."""
    yield b'{"results":['
    separator = b""
    async for batch in bulk.stream_with_cells(
        factory, job_id, batch_size=batch_size, start=page.start, limit=page.limit
    ):
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
    page: Page = ALL,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[bytes]:
    """`csv_body` for a job read from a CSV: the input's own columns come first."""
    yield csv_export.header(columns).encode()
    async for batch in bulk.stream_with_cells(
        factory, job_id, batch_size=batch_size, start=page.start, limit=page.limit
    ):
        pairs = ((cells, orjson.loads(output)) for cells, output in batch)
        yield csv_export.encode_with_cells(pairs, width=len(columns)).encode()


def results_response(
    factory: bulk.SessionFactory,
    progress: bulk.JobProgress,
    *,
    format: Literal["json", "csv"],
    page: Page = ALL,
) -> StreamingResponse:
    """A downloadable job's results (or one page of them) as JSON or CSV, streamed."""
    job_id, columns = progress.job_id, progress.columns
    if format == "csv":
        return StreamingResponse(
            csv_body_with_cells(factory, job_id, columns, page=page)
            if columns
            else csv_body(factory, job_id, page=page),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="bulk-{job_id}.csv"'},
        )
    body = (
        json_body_with_cells(factory, job_id, columns, page=page)
        if columns
        else json_body(factory, job_id, page=page)
    )
    return StreamingResponse(body, media_type="application/json")


@router.get("/v0/bulk/{job_id}/download", responses=DOWNLOAD_RESPONSES)
@router.get("/v0/bulk/{job_id}/result", responses=DOWNLOAD_RESPONSES)
@router.get("/v0/bulk/{job_id}/results", responses=DOWNLOAD_RESPONSES)
async def download_bulk_results(
    job: JobInPath,
    session: DbSession,
    factory: SessionFactory,
    format: Format = "json",
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_LIMIT, description=f"{LIMIT_DESCRIPTION}; unset: every result"),
    ] = None,
    offset: Offset = 0,
) -> StreamingResponse:
    """A complete job's results; a cancelled job's results so far. Running: 409."""
    progress = await bulk.downloadable(session, job)
    return results_response(factory, progress, format=format, page=Page(offset, limit))
