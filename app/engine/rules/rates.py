"""Send rates such as ``"9/m"``: at most 9 RCPTs a minute to one MX group.

The format is the Reacher bulk spec's `max_msg_rate` (``{number}/{s|m|h}``), plus ``d`` for a
daily budget. It is kept strict, one positive integer and one unit letter, so a typo such as
``"9/min"`` or ``"9m"`` fails at start-up instead of meaning something else. A rate is
enforced without bursts: sends are spaced by `Rate.interval`, so "9/m" is one every 6.67 s,
never nine at once and then a minute's silence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_RATE = re.compile(r"([0-9]+) */ *([smhd])")


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` sends per `unit` (one of s, m, h, d)."""

    count: int
    unit: str

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a rate needs at least 1 send per period, not {self.count}")
        if self.unit not in _UNITS:
            raise ValueError(f"a rate's unit is one of s, m, h, d, not {self.unit!r}")

    @property
    def interval(self) -> float:
        """Seconds between two sends."""
        return _UNITS[self.unit] / self.count

    def __str__(self) -> str:
        return f"{self.count}/{self.unit}"


def parse_rate(text: str) -> Rate:
    """``"9/m"`` → Rate(9, "m"); spaces around the slash are allowed, nothing else is."""
    match = _RATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"bad rate {text!r}: expected {{number}}/{{unit}} with unit s, m, h or d, "
            "e.g. '9/m' for 9 a minute"
        )
    return Rate(int(match.group(1)), match.group(2))


@dataclass(frozen=True, slots=True)
class Rates:
    """Which rate each MX group gets: its override, else the default (None: no limit)."""

    default: Rate | None = None
    overrides: Mapping[str, Rate] = field(default_factory=dict)

    def span(self, key: str, count: int) -> float:
        """Seconds that `count` sends to group `key` take in its schedule (0.0: no rate)."""
        if count < 1:
            raise ValueError(f"reserve at least 1 send, not {count}")
        rate = self.overrides.get(key, self.default)
        return 0.0 if rate is None else count * rate.interval
