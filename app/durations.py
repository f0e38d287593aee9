"""Durations in settings: a number of seconds, or a number and a unit ("90s", "15m", "12h",
"1d", "2w"), or what pydantic reads as a `timedelta` (ISO 8601 "P1D", "PT1H30M";
"[D,]HH:MM:SS")."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_WITH_UNIT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_TIMEDELTA = TypeAdapter(timedelta)


def seconds(value: object) -> object:
    """`value` in seconds when it is a duration string; anything else as given (a number is
    seconds already, and the field's own validation judges the rest)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if match := _WITH_UNIT.fullmatch(text):
        return float(match[1]) * _UNITS[match[2].lower()]
    try:
        return _TIMEDELTA.validate_python(text).total_seconds()
    except ValidationError:
        raise ValueError(
            'must be a number of seconds or a duration such as "90s", "15m", "12h", "1d" or "P1D"'
        ) from None
