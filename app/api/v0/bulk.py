"""`POST /v0/bulk`, `GET /v0/bulk/{job_id}`, `DELETE /v0/bulk/{job_id}`: Reacher's bulk API.

`{job_id}` in a path is the job's numeric `job_id` or its unguessable `job_token` (both are
returned by POST); with `MXPROBE_REQUIRE_JOB_TOKEN` only the token finds the job.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from app import bulk, imports, logs
from app.api.deps import AppSettings, DbSession
from app.api.errors import ERROR_RESPONSES, ApiError, error_response
from app.api.v0 import proxies
from app.api.v0.schemas import MAX_ADDRESS_LENGTH, STORABLE, ProbeOptions, text_problem
from app.api.v1.webhook import Webhook
from app.bulk import BulkStatus, status_body
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

INPUT_TYPES = ("array", "csv", "remote_url")
MAX_URL_LENGTH = 2048

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


_ARRAY_INPUT = {
    "type": "array",
    "items": {"type": "string", "maxLength": MAX_ADDRESS_LENGTH, "pattern": "^[^\\u0000]*$"},
    "minItems": 1,
    "description": "The email addresses, one row each (more than MXPROBE_BULK_MAX_EMAILS: 413)",
}
_CSV_INPUT = {
    "type": "string",
    "minLength": 1,
    "pattern": "^[^\\u0000]*$",
    "description": "A list: one address per line, or a CSV with an email column",
}
_URL_INPUT = {
    "type": "string",
    "maxLength": MAX_URL_LENGTH,
    "pattern": "^https?://[^\\u0000]+$",
    "description": "An http(s) URL of such a list; user:password@ is sent as basic auth",
}
_INPUT_BY_TYPE = (("array", _ARRAY_INPUT), ("csv", _CSV_INPUT), ("remote_url", _URL_INPUT))
_INPUT_SCHEMA = {"anyOf": [_ARRAY_INPUT, _CSV_INPUT, _URL_INPUT]}


def _input_by_type(schema: dict[str, Any]) -> None:
    """The document says which `input` goes with which `input_type`."""
    schema["oneOf"] = [
        {"properties": {"input_type": {"const": kind}, "input": shape}}
        for kind, shape in (
            ("array", _ARRAY_INPUT),
            ("csv", _CSV_INPUT),
            ("remote_url", _URL_INPUT),
        )
    ]


class BulkIn(ProbeOptions):
    """Reacher's bulk request: `input` is a list of addresses (`array`), a list's text
    (`csv`: one address per line, or a CSV), or the URL of such a file (`remote_url`)."""

    model_config = ConfigDict(json_schema_extra=_input_by_type)

    input_type: Annotated[
        str,
        Field(
            max_length=32,
            description='"array": `input` is a list of email addresses; "csv": the text of a '
            'list or CSV file; "remote_url": the http(s) URL of one',
            json_schema_extra={"enum": list(INPUT_TYPES)},
        ),
        STORABLE,
    ]
    # Checked below, item by item, for messages that name the item.
    input: Annotated[Any, WithJsonSchema(_INPUT_SCHEMA)]
    webhook: Webhook | None = Field(
        default=None,
        description="Ours on v0 (Reacher has it on /v1/bulk): where to announce each verified "
        "row and the job's end, for every input_type",
    )

    @model_validator(mode="after")
    def _valid_input(self) -> BulkIn:
        if self.input_type not in INPUT_TYPES:
            raise ValueError(
                f'unknown input_type "{self.input_type}": expected "array", "csv" or "remote_url"'
            )
        if self.input is None:
            raise ValueError("input field is required.")
        if self.input_type != "array":
            return self._valid_text_input()
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

    def _valid_text_input(self) -> BulkIn:
        what = "a URL" if self.input_type == "remote_url" else "the text of a list or CSV file"
        if not isinstance(self.input, str) or not self.input.strip():
            raise ValueError(f'input must be {what} for input_type "{self.input_type}"')
        _storable(self.input, where="input")
        if self.input_type == "remote_url":
            if len(self.input) > MAX_URL_LENGTH:
                raise ValueError(f"input is longer than {MAX_URL_LENGTH} characters")
            if not self.input.lower().startswith(("http://", "https://")):
                raise ValueError("input must be an http:// or https:// URL")
        return self

    def emails(self) -> list[str]:
        assert isinstance(self.input, list)
        return self.input

    def job_options(self, *, settings: Settings) -> bulk.JobOptions:
        return job_options(self, settings=settings)


def job_options(options: ProbeOptions, *, settings: Settings) -> bulk.JobOptions:
    """The options stored on the job; raises ApiError (400) for a proxy the server refuses
    (`proxies.for_job`)."""
    return bulk.JobOptions(
        from_email=options.from_email,
        hello_name=options.hello_name,
        proxy=proxies.for_job(options.proxy, settings=settings),
        smtp_ports=options.ports(),
        fresh=options.fresh,
        policy=options.policy,
    )


class BulkCreated(BaseModel):
    job_id: int = Field(description="The job's number (sequential)")
    job_token: str = Field(
        description="An unguessable name for the job, accepted wherever job_id is; with "
        "MXPROBE_REQUIRE_JOB_TOKEN the only one"
    )


UPLOAD_CHUNK = 64 * 1024

_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "A list: one address per line, or a CSV with an email column "
            "(gzip accepted)",
        },
        "from_email": {"type": "string"},
        "hello_name": {"type": "string"},
        "proxy": {"type": "string", "description": "The name of a proxy in MXPROBE_PROXIES"},
        "smtp_port": {"type": "string", "pattern": "^[0-9]{1,5}$"},
        "smtp_ports": {"type": "string", "description": 'Ports, comma-separated: "25,587"'},
        "fresh": {
            "type": "string",
            "enum": ["true", "false"],
            "description": "true: probe every row, whatever the result cache holds",
        },
        "policy": {
            "type": "string",
            "enum": ["none", "trusted_providers_only"],
            "description": "The verdict policy (default MXPROBE_POLICY)",
        },
        "webhook": {
            "type": "string",
            "description": "The job's webhooks as JSON text, as in a JSON request: "
            '{"on_each_email": {"url": ...}, "on_complete": {...}}',
        },
    },
}


class _WebhookField(BaseModel):
    """An upload's `webhook` form field, once read as JSON (errors named `webhook.…`)."""

    webhook: Webhook


@router.post(
    "/v0/bulk",
    responses=BULK_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BulkIn"}},
                "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
            },
        }
    },
)
async def create_bulk_job(
    request: Request, session: DbSession, settings: AppSettings
) -> BulkCreated:
    """Create a job from a JSON body (`input_type` array, csv or remote_url) or an uploaded
    file (`multipart/form-data`). An array, a CSV text or an upload is enqueued whole, in this
    request's transaction; a URL is checked here and read by a worker (`app.imports`)."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        job = await _upload(request, session, settings)
    elif content_type and not _is_json(content_type):
        raise ApiError(
            "send the request as JSON (Content-Type: application/json), or a file as "
            "multipart/form-data"
        )
    else:
        body = _validated(BulkIn, await json_body(request))
        options = body.job_options(settings=settings)
        webhook = bulk.checked_webhook(
            body.webhook.stored() if body.webhook else None,
            allow_private_urls=settings.allow_private_urls,
        )
        if body.input_type == "array":
            job = await bulk.submit(
                session,
                emails=body.emails(),
                options=options,
                max_emails=settings.bulk_max_emails,
                webhook=webhook,
                allow_private_urls=settings.allow_private_urls,
            )
        elif body.input_type == "csv":
            job = await imports.submit_file(
                session,
                _one(str(body.input).encode()),
                options=options,
                max_emails=settings.bulk_max_emails,
                webhook=webhook,
            )
        else:
            job = await imports.submit_url(
                session, str(body.input), options=options, settings=settings, webhook=webhook
            )
    logs.job_event("job submitted", job_id=job.job_id, via="POST /v0/bulk")
    return BulkCreated(job_id=job.job_id, job_token=job.token)


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def json_body(request: Request) -> Any:
    """The body as JSON, failing as FastAPI's own body parameters fail (`errors.install`
    words it)."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from exc
    except (RecursionError, ValueError) as exc:  # too deep, not UTF-8, a 5,000-digit number
        raise StarletteHTTPException(400, "There was an error parsing the body") from exc


Model = TypeVar("Model", bound=BaseModel)


def _validated(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from None


def _form_number(text: str) -> int | str:
    """A form field's digits as a number (forms carry only text); anything else as given,
    for the model to refuse."""
    text = text.strip()
    return int(text) if re.fullmatch(r"[0-9]{1,5}", text) else text


async def _upload(request: Request, session: AsyncSession, settings: Settings) -> bulk.NewJob:
    try:
        form = await request.form(max_files=1, max_fields=10)
    except MultiPartException as exc:
        raise ApiError(f"the upload could not be read: {exc.message}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError('the upload has no "file" part (the list, as a file)')
        fields: dict[str, Any] = {
            name: value
            for name in ("from_email", "hello_name", "proxy", "policy")
            if isinstance(value := form.get(name), str) and value
        }
        port = form.get("smtp_port")
        if isinstance(port, str) and port.strip():
            fields["smtp_port"] = _form_number(port)
        ports = form.get("smtp_ports")
        if isinstance(ports, str) and ports.strip():
            fields["smtp_ports"] = [_form_number(p) for p in ports.split(",")]
        fresh = form.get("fresh")
        if isinstance(fresh, str) and fresh.strip():
            # "true"/"false" as a form sends them; anything else is refused by the model
            fields["fresh"] = {"true": True, "false": False}.get(fresh.strip().lower(), fresh)
        options = _validated(ProbeOptions, fields)
        webhook = bulk.checked_webhook(
            _form_webhook(form.get("webhook")), allow_private_urls=settings.allow_private_urls
        )

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await upload.read(UPLOAD_CHUNK):
                yield chunk

        return await imports.submit_file(
            session,
            chunks(),
            options=job_options(options, settings=settings),
            max_emails=settings.bulk_max_emails,
            webhook=webhook,
        )
    finally:
        await form.close()


def _form_webhook(value: object) -> dict[str, object] | None:
    """The upload's `webhook` field (JSON text), validated as a JSON request's would be."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        raise ApiError("webhook: the form field must hold JSON") from None
    return _validated(_WebhookField, {"webhook": data}).webhook.stored()


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
    if progress.cancelled_at is not None:
        logs.job_event(
            "job cancelled",
            job_id=progress.job_id,
            processed=progress.total_processed,
            rows=progress.total_records,
        )
    return JSONResponse(status_body(progress))


MAX_LIST_LIMIT = 1000
"""The most jobs one page of `GET /v0/bulk` may hold."""

MAX_LIST_OFFSET = 1_000_000_000
"""The most jobs a page may skip."""


class JobList(BaseModel):
    """Ours: a page of jobs for a front end, newest first."""

    jobs: list[BulkStatus] = Field(description="Each job's status body, newest first")


LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: ERROR_RESPONSES[400],
    404: error_response(
        "The job list is off: MXPROBE_REQUIRE_JOB_TOKEN is set (it would list every tenant's jobs)"
    ),
    503: ERROR_RESPONSES[503],
}

LIST_OFF = (
    "the job list is off while MXPROBE_REQUIRE_JOB_TOKEN is set (it would show every "
    "tenant's jobs): ask for each job by its job_token"
)


@router.get("/v0/bulk", response_model=JobList, responses=LIST_RESPONSES)
async def list_bulk_jobs(
    session: DbSession,
    settings: AppSettings,
    limit: Annotated[
        int,
        Query(
            ge=1, le=MAX_LIST_LIMIT, description=f"At most this many jobs (1 to {MAX_LIST_LIMIT})"
        ),
    ] = 50,
    offset: Annotated[
        int, Query(ge=0, le=MAX_LIST_OFFSET, description="Skip this many of the newest jobs")
    ] = 0,
) -> JSONResponse:
    """Ours: the jobs, newest first, each as `GET /v0/bulk/{job_id}` answers it. Off (404)
    with MXPROBE_REQUIRE_JOB_TOKEN."""
    if settings.require_job_token:
        raise ApiError(LIST_OFF, status_code=404)
    page = await bulk.recent(session, limit=limit, offset=offset)
    return JSONResponse({"jobs": [status_body(progress) for progress in page]})
