"""Log lines: readable text, or one JSON object per line (`MXPROBE_LOG_FORMAT=json`).

`config` is the `logging.config.dictConfig` both processes use (the worker applies it; the
API hands it to uvicorn, whose own loggers then write through it too). Structured lines carry
their fields as the record's extras: JSON puts each in its own key (python-json-logger); text
appends them to the message as `key=value`.

One line per verification (`verification`), on the `mxprobe.verifications` logger at INFO:
job, row, domain, MX group, verdict, reply category and code, duration. The address itself is
personal data: it is added only when that logger is enabled for DEBUG
(`MXPROBE_LOG_LEVEL=DEBUG`). Jobs' lifecycle (`job_event`: submitted, cancelled, finished) is
on `mxprobe.jobs`.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.engine import CheckEmailOutput
from app.engine.rules import providers

LogFormat = Literal["text", "json"]

VERIFICATIONS = logging.getLogger("mxprobe.verifications")
JOBS = logging.getLogger("mxprobe.jobs")

VERIFICATION_FIELDS = (
    "job_id",
    "row",
    "domain",
    "mx_group",
    "verdict",
    "category",
    "reply_code",
    "duration_ms",
    "cached",
)
"""The fields of a verification line (and `email`, at DEBUG only); absent ones are null in
JSON and left out of text: a single check has no job_id or row, an address whose domain takes
no mail no MX group, category or reply_code."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Record attributes that are not a line's fields: the standard ones, and uvicorn's coloured
# copy of its message.
_NOT_FIELDS = frozenset([*RESERVED_ATTRS, "color_message", "message", "asctime"])


class TextFormatter(logging.Formatter):
    """The usual line, then the record's fields as `key=value` (None left out)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # before any traceback
        line = super().formatMessage(record)
        fields = [f"{key}={_text(value)}" for key, value in fields_of(record).items()]
        return " ".join([line, *fields]) if fields else line


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The extras a line was logged with, in the order given; None values left out."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _NOT_FIELDS and not key.startswith("_") and value is not None
    }


def _text(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def formatter(log_format: LogFormat) -> logging.Formatter:
    """Lines in `log_format`: text, or JSON objects with `time`, `level`, `logger`,
    `message` and the line's fields (and `exc_info` with a traceback)."""
    if log_format == "json":
        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            timestamp="time",  # ISO 8601, UTC
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=sorted(_NOT_FIELDS - {"message"}),
        )
    return TextFormatter(TEXT_FORMAT)


def config(*, log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `dictConfig` for the whole process: one handler on stderr at the root, in
    `log_format`, at `level`; procrastinate's per-task lines (two per address) left out."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter, "log_format": log_format}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # uvicorn's own, through the root handler (its default config gives them theirs)
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "procrastinate": {"level": "WARNING"},
        },
    }


def verification(
    output: CheckEmailOutput, *, job_id: int | None = None, row: int | None = None
) -> None:
    """The verification's line: `job_id`/`row` for a bulk job's row, None for a single
    check. The address only at DEBUG."""
    if not VERIFICATIONS.isEnabledFor(logging.INFO):
        return
    probe = output.debug.probe
    mx_host = probe.mx_host if probe is not None else None
    duration = output.debug.duration
    fields: dict[str, Any] = {
        "job_id": job_id,
        "row": row,
        "domain": output.syntax.domain or None,
        "mx_group": providers.limit_key(mx_host) if mx_host else None,
        "verdict": output.is_reachable.value,
        "category": probe.category if probe is not None else None,
        "reply_code": probe.code if probe is not None else None,
        "duration_ms": duration.secs * 1000 + duration.nanos // 1_000_000,
        "cached": output.from_cache,
    }
    if VERIFICATIONS.isEnabledFor(logging.DEBUG):
        fields["email"] = output.input
    VERIFICATIONS.info("verified", extra=fields)


def job_event(event: str, *, job_id: int, **fields: Any) -> None:
    """A job's lifecycle line: `event` is "job submitted", "job cancelled", "job finished"."""
    JOBS.info(event, extra={"job_id": job_id, **fields})
