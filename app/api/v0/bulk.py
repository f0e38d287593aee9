"""`POST /v0/bulk`, `GET /v0/bulk/{job_id}`, `DELETE /v0/bulk/{job_id}`: Reacher's bulk API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from app import bulk
from app.api.deps import AppSettings, DbSession
from app.api.errors import ERROR_RESPONSES
from app.api.v0.schemas import ProbeOptions

router = APIRouter()

JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The job_id POST /v0/bulk returned")]

_FUTURE_INPUT_TYPES = ("remote_url", "csv", "file")

_ERROR_BODY = {"application/json": {"example": {"error": "..."}}}
BULK_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"description": "Not complete yet", "content": _ERROR_BODY},
    413: {"description": "Too many emails", "content": _ERROR_BODY},
}


def _storable(value: str, *, where: str) -> None:
    """PostgreSQL text cannot hold NUL, nor UTF-8 a lone surrogate (which JSON can spell)."""
    if "\x00" in value:
        raise ValueError(f"{where} contains a NUL character")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{where} is not valid Unicode") from None


class BulkIn(ProbeOptions):
    """Reacher's bulk request. Only `input_type: "array"` exists so far."""

    input_type: str = Field(description='"array": `input` is a list of email addresses')
    input: Any = Field(default=None, description="The email addresses, one row each")

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
            _storable(item, where=f"input[{index}]")
        for name in ("from_email", "hello_name"):
            value = getattr(self, name)
            if value is not None:
                _storable(value, where=name)
        if self.proxy is not None:
            for name in ("host", "username", "password"):
                value = getattr(self.proxy, name)
                if value is not None:
                    _storable(value, where=f"proxy.{name}")
        return self

    def emails(self) -> list[str]:
        assert isinstance(self.input, list)
        return self.input

    def job_options(self) -> bulk.JobOptions:
        return bulk.JobOptions(
            from_email=self.from_email,
            hello_name=self.hello_name,
            proxy=self.proxy.to_config() if self.proxy else None,
            smtp_ports=self.ports(),
        )


class BulkCreated(BaseModel):
    job_id: int


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
    job_id = await bulk.submit(
        session,
        emails=body.emails(),
        options=body.job_options(),
        max_emails=settings.bulk_max_emails,
    )
    return BulkCreated(job_id=job_id)


STATUS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": BulkStatus, "description": "The job's progress"},
    **BULK_RESPONSES,
}


@router.get("/v0/bulk/{job_id}", responses=STATUS_RESPONSES)
async def get_bulk_job(job_id: JobId, session: DbSession) -> JSONResponse:
    progress = await bulk.status(session, job_id)
    return JSONResponse(status_body(progress))


@router.delete("/v0/bulk/{job_id}", responses=STATUS_RESPONSES)
async def cancel_bulk_job(job_id: JobId, session: DbSession) -> JSONResponse:
    """Cancel the tasks not started yet; keep what is verified (status and download work)."""
    progress = await bulk.cancel(session, job_id)
    return JSONResponse(status_body(progress))
