"""The verification line: its fields in JSON and in text, the address only at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from app import logs
from app.engine import CheckEmailOutput
from app.engine.model import Duration, ProbeDebug
from worker.tasks import failed_output

ADDRESS = "alice.personal@example.com"


def output() -> CheckEmailOutput:
    """A result with an RCPT answer: 550 from mx.example.com, 12 ms."""
    base = failed_output(ADDRESS, RuntimeError("unused"))
    debug = base.debug.model_copy(
        update={
            "duration": Duration.from_seconds(0.012),
            "probe": ProbeDebug(
                category="hard_fail",
                code=550,
                message="5.1.1 User unknown",
                elapsed_ms=9,
                mx_host="MX.Example.com",
            ),
        }
    )
    return base.model_copy(update={"debug": debug})


@pytest.fixture
def lines() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logs.VERIFICATIONS
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield stream, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def logged(
    lines: tuple[io.StringIO, logging.Handler], log_format: logs.LogFormat, level: int
) -> str:
    stream, handler = lines
    handler.setFormatter(logs.formatter(log_format))
    logs.VERIFICATIONS.setLevel(level)
    logs.verification(output(), job_id=42, row=7)
    return stream.getvalue()


def test_a_json_line_has_the_fields_and_no_address_at_info(lines: Any) -> None:
    text = logged(lines, "json", logging.INFO)

    assert text.count("\n") == 1
    line = json.loads(text)
    assert line["message"] == "verified"
    assert line["level"] == "INFO"
    assert line["logger"] == "mxprobe.verifications"
    assert "time" in line
    assert {k: line[k] for k in logs.VERIFICATION_FIELDS} == {
        "job_id": 42,
        "row": 7,
        "domain": "example.com",
        "mx_group": "mx.example.com",
        "verdict": "unknown",
        "category": "hard_fail",
        "reply_code": 550,
        "duration_ms": 12,
        "cached": False,
    }
    assert ADDRESS not in text
    assert "alice" not in text


def test_the_address_only_at_debug(lines: Any) -> None:
    line = json.loads(logged(lines, "json", logging.DEBUG))

    assert line["email"] == ADDRESS


def test_a_text_line_is_readable(lines: Any) -> None:
    text = logged(lines, "text", logging.INFO)

    assert text.rstrip("\n").endswith(
        "INFO mxprobe.verifications verified job_id=42 row=7 domain=example.com "
        "mx_group=mx.example.com verdict=unknown category=hard_fail reply_code=550 "
        "duration_ms=12 cached=False"
    )
    assert "alice" not in text


def test_text_values_with_spaces_are_quoted() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job cancelled", None, None)
    record.reason = 'a "b" c'

    line = logs.formatter("text").format(record)

    assert line.endswith('job cancelled reason="a \\"b\\" c"')
