"""`POST /v0/bulk`, `GET /v0/bulk/{job_id}`, `DELETE /v0/bulk/{job_id}`: Reacher's bulk API.

`{job_id}` in a path is the job's numeric `job_id` or its unguessable `job_token` (both are
returned by POST); with `MXPROBE_REQUIRE_JOB_TOKEN` only the token finds the job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, WithJsonSchema, model_validator

from app import bulk
from app.api.deps import AppSettings, DbSession
from app.api.errors import ERROR_RESPONSES
from app.api.v0 import proxies
from app.api.v0.schemas import MAX_ADDRESS_LENGTH, STORABLE, ProbeOptions, text_problem
from app.settings import Settings

router = APIRouter()


def _job_in_path(
    job_id: Annotated[
        str,
        Path(
            description=(
                "The job_id POST /v0/bulk returned (digits, 1 to 2^63-1, no sign or leading "
                "zero), or its job_token (32 characters of A-Z a-z 0-9 - _). With "
                "MXPROBE_REQUIRE_JOB_TOKEN only the token finds the job (an id is answered "
                "404). Anything else is a 400."
            ),
            # Published, not enforced by FastAPI: `bulk.job_ref` checks it, with a message.
            json_schema_extra={"pattern": bulk.JOB_REF_PATTERN},
        ),
    ],
    settings: AppSettings,
) -> bulk.JobRef:
    return bulk.job_ref(job_id, require_token=settings.require_job_token)


JobInPath = Annotated[bulk.JobRef, Depends(_job_in_path)]
"""The job a route's `{job_id}` names: its id or its token, parsed strictly."""

_FUTURE_INPUT_TYPES = ("remote_url", "csv", "file")

_ERROR_BODY = {"application/json": {"example": {"error": "..."}}}
BULK_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"description": "Not complete yet", "content": _ERROR_BODY},
    413: {"description": "Too many emails", "content": _ERROR_BODY},
}


def _storable(value: str, *, where: str) -> None:
    """`schemas.STORABLE`'s check, for a value found inside `input` (named by its place)."""
    if (problem := text_problem(value)) is not None:
        raise ValueError(f"{where} {problem}")


_INPUT_SCHEMA = {
    "type": "array",
    "items": {"type": "string", "maxLength": MAX_ADDRESS_LENGTH, "pattern": "^[^\\u0000]*$"},
    "minItems": 1,
    "description": "The email addresses, one row each (more than MXPROBE_BULK_MAX_EMAILS: 413)",
}


class BulkIn(ProbeOptions):
    """Reacher's bulk request. Only `input_type: "array"` exists so far."""

    input_type: Annotated[
        str,
        Field(
            max_length=32,
            description='"array": `input` is a list of email addresses',
            json_schema_extra={"enum": ["array"]},
        ),
        STORABLE,
    ]
    # Checked below, item by item, for messages that name the item.
    input: Annotated[Any, WithJsonSchema(_INPUT_SCHEMA)]

    @model_validator(mode="after")
    def _valid_input(self) -> BulkIn:
        if self.input_type in _FUTURE_INPUT_TYPES:
            raise ValueError(f'input_type "{self.input_type}" is not supported yet: use "array"')
        if self.input_type != "array":
            raise ValueError(f'unknown input_type "{self.input_type}": expected "array"')
        if self.input is None:
            raise ValueError("input field is required.")
        if not isinstance(self.input, list):
            raise ValueError("input must be an array of email addresses")
        if not self.input:
            raise ValueError("input must contain at least one email address")
        for index, item in enumerate(self.input):
            if not isinstance(item, str):
                raise ValueError(f"input[{index}] must be a string (an email address)")
            if len(item) > MAX_ADDRESS_LENGTH:
                raise ValueError(f"input[{index}] is longer than {MAX_ADDRESS_LENGTH} characters")
            _storable(item, where=f"input[{index}]")
        # proxy: its host is STORABLE and its credentials ASCII (schemas.ProxyIn)
        return self

    def emails(self) -> list[str]:
        assert isinstance(self.input, list)
        return self.input

    def job_options(self, *, settings: Settings) -> bulk.JobOptions:
        """The options stored on the job; raises ApiError (400) for a proxy the server
        refuses (`proxies.for_job`)."""
        return bulk.JobOptions(
            from_email=self.from_email,
            hello_name=self.hello_name,
            proxy=proxies.for_job(self.proxy, settings=settings),
            smtp_ports=self.ports(),
        )


class BulkCreated(BaseModel):
    job_id: int = Field(description="The job's number (sequential)")
    job_token: str = Field(
        description="An unguessable name for the job, accepted wherever job_id is; with "
        "MXPROBE_REQUIRE_JOB_TOKEN the only one"
    )


class Summary(BaseModel):
    total_safe: int
    total_invalid: int
    total_risky: int
    total_unknown: int


class BulkStatus(BaseModel):
    """The spec's fields, in its order; `finished_at` only once the job is complete."""

    job_id: int
    created_at: str
    finished_at: str | None = Field(default=None, exclude_if=lambda v: v is None)
    total_records: int
    total_processed: int
    summary: Summary
    job_status: bulk.JobStatus


def iso8601(moment: datetime) -> str:
    """`2017-04-15T20:00:06.000Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_body(progress: bulk.JobProgress) -> dict[str, Any]:
    status = bulk.job_status(progress)
    finished_at = progress.finished_at if status is bulk.JobStatus.COMPLETE else None
    return BulkStatus(
        job_id=progress.job_id,
        created_at=iso8601(progress.created_at),
        finished_at=iso8601(finished_at) if finished_at else None,
        total_records=progress.total_records,
        total_processed=progress.total_processed,
        summary=Summary(
            total_safe=progress.total_safe,
            total_invalid=progress.total_invalid,
            total_risky=progress.total_risky,
            total_unknown=progress.total_unknown,
        ),
        job_status=status,
    ).model_dump(mode="json")


@router.post("/v0/bulk", responses=BULK_RESPONSES)
async def create_bulk_job(body: BulkIn, session: DbSession, settings: AppSettings) -> BulkCreated:
    """Create a job: one verification task per address, all in one transaction."""
    job = await bulk.submit(
        session,
        emails=body.emails(),
        options=body.job_options(settings=settings),
        max_emails=settings.bulk_max_emails,
    )
    return BulkCreated(job_id=job.job_id, job_token=job.token)


STATUS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": BulkStatus, "description": "The job's progress"},
    **BULK_RESPONSES,
}


@router.get("/v0/bulk/{job_id}", responses=STATUS_RESPONSES)
async def get_bulk_job(job: JobInPath, session: DbSession) -> JSONResponse:
    progress = await bulk.status(session, job)
    return JSONResponse(status_body(progress))


@router.delete("/v0/bulk/{job_id}", responses=STATUS_RESPONSES)
async def cancel_bulk_job(job: JobInPath, session: DbSession) -> JSONResponse:
    """Cancel the tasks not started yet; keep what is verified (status and download work)."""
    progress = await bulk.cancel(session, job)
    return JSONResponse(status_body(progress))
