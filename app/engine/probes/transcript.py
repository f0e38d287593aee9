"""A record of SMTP conversations, line by line, with timings: what `mxprobe check
--transcript` prints.

Sessions write to it as they talk (`ProbeSession(transcript=...)`): each command as sent, each
reply line as received, and the events between (connecting, TLS). Times are milliseconds
since the transcript began, so the lines of concurrent sessions sort into one timeline;
`session` tells them apart. Writing is a list append: cheap enough to leave on for a few
manual checks, but nothing turns it on in the service.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Literal

Direction = Literal["client", "server", "event"]


@dataclass(frozen=True, slots=True)
class Line:
    session: int  # 1, 2, ... in the order sessions began
    at_ms: float  # since the transcript began
    direction: Direction
    text: str


class Transcript:
    """Lines of every session that was given this transcript, in the order they happened."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._lines: list[Line] = []
        self._sessions = itertools.count(1)

    def begin(self, description: str) -> int:
        """A new session's number, after recording `description` (where it connects)."""
        session = next(self._sessions)
        self.record(session, "event", description)
        return session

    def record(self, session: int, direction: Direction, text: str) -> None:
        at_ms = (time.perf_counter() - self._started) * 1000
        self._lines.append(Line(session, round(at_ms, 1), direction, text))

    def reply(self, session: int, code: int, text: str) -> None:
        """One reply, as the server wrote it: ``250-first``, ..., ``250 last``."""
        lines = text.split("\n")
        for i, line in enumerate(lines):
            separator = "-" if i < len(lines) - 1 else " "
            self.record(session, "server", f"{code}{separator}{line}".rstrip())

    def take(self) -> list[Line]:
        """The lines recorded since the last `take`, which are forgotten."""
        taken, self._lines = self._lines, []
        return taken


def render(line: Line) -> str:
    """``   12.3 ms  #1  C: EHLO probe.example``: time, session, who, text."""
    who = {"client": "C:", "server": "S:", "event": "--"}[line.direction]
    return f"{line.at_ms:9.1f} ms  #{line.session}  {who} {line.text}"
