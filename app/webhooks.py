"""Webhooks of bulk jobs: what a job asked for, the messages, their signature, their POST.

Two kinds, each `{"url", "headers"?, "extra"?}` on the job:

- `on_each_email` (Reacher's): `{"result": <CheckEmailOutput>, "extra": <extra|null>}` once per
  row, enqueued in the transaction that first stores the row's result (`worker.writer`), so a
  row retried by the queue is still sent once.
- `on_complete` (ours): the job's final status body (`app.bulk.status_body`) with `"extra"`
  added, once, enqueued by the transaction that counts the job's last row.

Each message is a task on the `webhook` queue (`worker.deliveries`): POSTed with a short
timeout, retried with a doubling delay on a non-2xx answer or no answer, until
`webhook_retry_for` seconds after its first try, then given up. Verification never waits on it.

Signed per Standard Webhooks (standardwebhooks.com): `webhook-id` (one per message, the same
on each retry), `webhook-timestamp` (unix seconds of this try) and `webhook-signature:
v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under MXPROBE_WEBHOOK_SECRET (unset: no
signature header). The URL is checked like a list's URL (`app.fetch`): a literal non-public
address is refused when the job is submitted, a name when it is resolved, at each try.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from standardwebhooks.webhooks import Webhook

from app import fetch
from app.engine import Resolver
from app.settings import Settings

ON_EACH_EMAIL: Final = "on_each_email"
ON_COMPLETE: Final = "on_complete"
KINDS: Final = (ON_EACH_EMAIL, ON_COMPLETE)
SECRET_PREFIX: Final = "whsec_"


class BadWebhook(ValueError):
    """A job's webhook cannot be accepted (a 400 at submit): the message says why."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    extra: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "headers": dict(self.headers), "extra": self.extra}

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> Endpoint:
        headers = stored.get("headers") or {}
        return cls(
            url=str(stored["url"]),
            headers=tuple((str(k), str(v)) for k, v in headers.items()),
            extra=stored.get("extra"),
        )


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """A job's webhooks, one endpoint per kind (or none)."""

    on_each_email: Endpoint | None = None
    on_complete: Endpoint | None = None

    def endpoint(self, kind: str) -> Endpoint | None:
        return self.on_each_email if kind == ON_EACH_EMAIL else self.on_complete

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind in KINDS if self.endpoint(kind) is not None)

    def to_json(self) -> dict[str, Any]:
        return {kind: endpoint.to_json() for kind in KINDS if (endpoint := self.endpoint(kind))}

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> WebhookConfig | None:
        """The stored (or requested: the same shape) config; None when it names no endpoint."""
        if not stored:
            return None
        found = {kind: Endpoint.from_json(stored[kind]) for kind in KINDS if stored.get(kind)}
        return cls(**found) if found else None


def checked(requested: Mapping[str, Any] | None, *, allow_private: bool) -> WebhookConfig | None:
    """The request's webhook, refused (`BadWebhook`) when what is known now is wrong: not an
    http(s) URL, or a literal non-public address (unless `allow_private`)."""
    try:
        config = WebhookConfig.from_json(requested)
    except (KeyError, AttributeError, TypeError) as exc:
        raise BadWebhook(f"webhook: each kind needs a url ({exc})") from None
    if config is None:
        return None
    for kind in config.kinds:
        endpoint = config.endpoint(kind)
        assert endpoint is not None
        try:
            fetch.check_url(endpoint.url, allow_private=allow_private)
        except fetch.FetchError as exc:
            raise BadWebhook(f"webhook.{kind}.url: {exc.message}") from None
    return config


def message_id(*, job_id: int, kind: str, position: int | None = None) -> str:
    """The `webhook-id` of a message: the same on every try of it, unique across messages."""
    if kind == ON_EACH_EMAIL:
        return f"msg_mxprobe_{job_id}_{position}"
    return f"msg_mxprobe_{job_id}_complete"


def row_body(*, output_json: str, extra: Any) -> bytes:
    """`{"result": ..., "extra": ...}`, the result as stored (Reacher's key order)."""
    return b'{"result":' + output_json.encode() + b',"extra":' + orjson.dumps(extra) + b"}"


def complete_body(*, status: Mapping[str, Any], extra: Any) -> bytes:
    return orjson.dumps({**status, "extra": extra})


def signing_key(secret: str) -> bytes:
    """`whsec_<base64>` (Standard Webhooks' form) is its decoded bytes; any other text is used
    as is (its UTF-8 bytes)."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"a {SECRET_PREFIX} secret must be base64 after its prefix") from None
    return secret.encode()


def signed_headers(
    body: bytes, *, msg_id: str, key: bytes | None, now: datetime | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers of one try of a message."""
    moment = now or datetime.now(UTC)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(moment.timestamp()))}
    if key:
        headers["webhook-signature"] = Webhook(key).sign(msg_id, moment, body.decode())
    return headers


def retry_delay(*, attempts_done: int, settings: Settings) -> float:
    """Seconds before the next try of a message that failed `attempts_done + 1` times."""
    return float(
        min(
            settings.webhook_retry_max_delay,
            settings.webhook_retry_delay * 2 ** min(attempts_done, 30),
        )
    )


async def post(
    endpoint: Endpoint, body: bytes, *, msg_id: str, settings: Settings, resolver: Resolver
) -> int:
    """One try: the receiver's HTTP status, or `fetch.FetchError` (refused, no answer)."""
    secret = settings.webhook_secret
    key = signing_key(secret.get_secret_value()) if secret else None
    headers = {**dict(endpoint.headers), **signed_headers(body, msg_id=msg_id, key=key)}
    return await fetch.post_json(
        endpoint.url,
        body,
        headers=headers,
        allow_private=settings.allow_private_urls,
        within=settings.webhook_timeout,
        resolve=resolver.addresses,
    )
