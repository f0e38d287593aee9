"""Reacher's v1 bulk API: `POST /v1/bulk`, `GET /v1/bulk/{job_id}`,
`GET /v1/bulk/{job_id}/results`. The v0 use cases, job ids and downloads, in v1's shapes:

- the request is `{"input": [addresses], "webhook"?: {...}}`; our per-job SMTP options
  (`from_email`, `hello_name`, `proxy`, `smtp_ports`) and `fresh` (bypass the result cache)
  are accepted as an extension;
- the status body is v0's;
- results are paged, `limit` 50 by default for JSON as Reacher's, and a running job's results
  are Reacher's 400 `{"error": "Job N is still running, please try again later"}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from app import bulk, logs
from app.api.deps import AppSettings, DbSession, SessionFactory
from app.api.errors import ERROR_RESPONSES, ApiError, error_response
from app.api.v0 import bulk as v0
from app.api.v0 import download
from app.api.v0.schemas import MAX_ADDRESS_LENGTH, STORABLE, ProbeOptions
from app.api.v1.webhook import Webhook

router = APIRouter()

DEFAULT_JSON_LIMIT = 50
"""Results per JSON page when `limit` is not given, as Reacher's."""

V1Address = Annotated[
    str,
    Field(max_length=MAX_ADDRESS_LENGTH, json_schema_extra={"pattern": "^[^\\u0000]*$"}),
    STORABLE,
]


class BulkV1In(ProbeOptions):
    """Reacher's v1 bulk request; `from_email`, `hello_name`, `proxy` and `smtp_port(s)` are
    ours, as in `POST /v0/bulk`."""

    input: list[V1Address] = Field(
        min_length=1,
        description="The email addresses, one row each (more than MXPROBE_BULK_MAX_EMAILS: 413)",
    )
    webhook: Webhook | None = Field(
        default=None, description="Where to announce each verified row and the job's end"
    )


CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    413: error_response("Too many emails"),
}


@router.post("/v1/bulk", responses=CREATE_RESPONSES)
async def create_bulk_job_v1(
    body: BulkV1In, session: DbSession, settings: AppSettings
) -> v0.BulkCreated:
    """Create a job from a list of addresses, enqueued whole in this request's transaction.
    Answers Reacher's `job_id`, and our `job_token`."""
    job = await bulk.submit(
        session,
        emails=body.input,
        options=v0.job_options(body, settings=settings),
        max_emails=settings.bulk_max_emails,
        webhook=body.webhook.stored() if body.webhook else None,
        allow_private_urls=settings.allow_private_urls,
    )
    logs.job_event("job submitted", job_id=job.job_id, via="POST /v1/bulk", rows=len(body.input))
    return v0.BulkCreated(job_id=job.job_id, job_token=job.token)


router.add_api_route(
    "/v1/bulk/{job_id}",
    v0.get_bulk_job,
    methods=["GET"],
    name="get_bulk_job_v1",
    responses=v0.STATUS_RESPONSES,
    description="A job's progress: the same body as `GET /v0/bulk/{job_id}`.",
)

RESULTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    **download.DOWNLOAD_RESPONSES,
    400: error_response(
        'Invalid request, or the job is still running: "Job N is still running, please try '
        'again later"'
    ),
}
RESULTS_RESPONSES.pop(409, None)
RESULTS_RESPONSES.pop(413, None)


@router.get("/v1/bulk/{job_id}/results", responses=RESULTS_RESPONSES)
async def bulk_results_v1(
    job: v0.JobInPath,
    session: DbSession,
    factory: SessionFactory,
    format: download.Format = "json",
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=download.MAX_LIMIT,
            description=f"{download.LIMIT_DESCRIPTION}; unset: {DEFAULT_JSON_LIMIT} for JSON, "
            "every result for CSV",
        ),
    ] = None,
    offset: download.Offset = 0,
) -> StreamingResponse:
    """A complete (or cancelled) job's results, in input order, one page at a time."""
    progress = await bulk.status(session, job)
    if bulk.job_status(progress) is bulk.JobStatus.RUNNING:
        raise ApiError(f"Job {progress.job_id} is still running, please try again later")
    if limit is None and format == "json":
        limit = DEFAULT_JSON_LIMIT
    page = download.Page(start=offset, limit=limit)
    return download.results_response(factory, progress, format=format, page=page)
