"""The `webhook` of `POST /v1/bulk`: where to announce each verified row (Reacher's
`on_each_email`) and the job's end (`on_complete`, ours). Validated here; stored on the job and
delivered by `app.webhooks`."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import FastAPI
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from app.api.v0.schemas import STORABLE
from app.bulk import BulkStatus

MAX_URL_LENGTH = 2048
MAX_HEADERS = 20
MAX_HEADER_VALUE_LENGTH = 4096

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
"""An HTTP header name (RFC 9110 `token`)."""

_PRINTABLE = re.compile(r"[\x20-\x7e]*")

RESERVED_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "content-type",
        "host",
        "transfer-encoding",
        "webhook-id",
        "webhook-signature",
        "webhook-timestamp",
    }
)
"""Set by the delivery itself: the body's framing and type, and the Standard Webhooks
signature headers."""


def _http_url(url: str) -> str:
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise ValueError("must name a host")
    if not _PRINTABLE.fullmatch(url) or " " in url:
        raise ValueError("must be printable ASCII without spaces (percent-encode the rest)")
    return url


def _headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name} is set by the delivery and cannot be given")
        if len(value) > MAX_HEADER_VALUE_LENGTH or not _PRINTABLE.fullmatch(value):
            raise ValueError(
                f"header {name}'s value must be printable ASCII (no control characters), "
                f"at most {MAX_HEADER_VALUE_LENGTH} characters"
            )
    return headers


WebhookUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where to POST: an http(s) URL (checked against private addresses as "
        "remote lists are)",
        json_schema_extra={"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$"},
    ),
    STORABLE,
    AfterValidator(_http_url),
]


class WebhookTarget(BaseModel):
    """One webhook: POSTed to `url` with `headers`, its body carrying `extra`."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    headers: Annotated[
        dict[str, str] | None,
        Field(
            default=None,
            description="Sent with each call (ours; e.g. Authorization): printable ASCII, "
            f"at most {MAX_HEADERS}",
        ),
        AfterValidator(lambda v: None if v is None else _headers(v)),
    ] = None
    extra: JsonValue = Field(
        default=None, description="Any JSON, returned as the body's `extra` on each call"
    )


class Webhook(BaseModel):
    """Reacher's `TaskWebhook`, with our `on_complete`."""

    model_config = ConfigDict(extra="forbid")

    on_each_email: WebhookTarget | None = Field(
        default=None,
        description='Reacher\'s: POST {"result": <CheckEmailOutput>, "extra": ...} once per row',
    )
    on_complete: WebhookTarget | None = Field(
        default=None,
        description="Ours: POST of the job's final status body, with `extra`, once",
    )

    def stored(self) -> dict[str, object] | None:
        """As passed to `app.bulk.submit` (None: no webhook at all)."""
        if self.on_each_email is None and self.on_complete is None:
            return None
        return self.model_dump(mode="json", exclude_none=True)


SIGNED = (
    "Signed per Standard Webhooks when MXPROBE_WEBHOOK_SECRET is set: `webhook-id` (the same on "
    "every retry of a message), `webhook-timestamp` (unix seconds of this try) and "
    '`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. Retried with '
    "a doubling delay on a non-2xx answer or none, for MXPROBE_WEBHOOK_RETRY_FOR seconds."
)


class EachEmailMessage(BaseModel):
    """What `on_each_email` POSTs, once per row (Reacher's body)."""

    result: dict[str, JsonValue] = Field(
        description="The row's CheckEmailOutput, as the job's download holds it"
    )
    extra: JsonValue = Field(description="The webhook's `extra`, as given (null when none)")


class CompleteMessage(BulkStatus):
    """What `on_complete` POSTs, once, when the job's last row is stored: its status body."""

    extra: JsonValue = Field(description="The webhook's `extra`, as given (null when none)")


def describe(app: FastAPI) -> None:
    """The two webhooks' POSTs, in the OpenAPI document's `webhooks`: what a receiver gets."""

    @app.webhooks.post(
        "on_each_email", summary="A row of a job verified", description=SIGNED, status_code=200
    )
    def on_each_email(message: EachEmailMessage) -> None:
        """The receiver answers 2xx; anything else is retried."""

    @app.webhooks.post(
        "on_complete", summary="A job's last row verified", description=SIGNED, status_code=200
    )
    def on_complete(message: CompleteMessage) -> None:
        """The receiver answers 2xx; anything else is retried."""
