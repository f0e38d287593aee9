"""What one fake MX server saw: connections, commands, replies.

The servers write from the world's event-loop thread; tests read from their own thread, so
every access takes a lock and reads return copies.
"""

from __future__ import annotations

import threading

__all__ = ["Recorder"]

DATA_VERBS = frozenset({"DATA", "BDAT"})


def verb_of(line: str) -> str:
    """The command verb of a command line, upper-cased (``"rcpt to:<a@b>"`` → ``"RCPT"``)."""
    return line.split(" ", 1)[0].strip().upper()


class Recorder:
    """Counters and the command log of one MX host."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._lock = threading.Lock()
        self._connections = 0
        self._active = 0
        self._peak = 0
        self._commands: list[tuple[int, str]] = []
        self._round_trips = 0
        self._refused_421 = 0

    # -- written by the server -------------------------------------------------------------

    def connection_opened(self) -> tuple[int, int]:
        """Count a new TCP connection; return its id and the number now open (itself included)."""
        with self._lock:
            self._connections += 1
            self._active += 1
            self._peak = max(self._peak, self._active)
            return self._connections, self._active

    def connection_closed(self) -> None:
        with self._lock:
            self._active -= 1

    def command(self, connection_id: int, line: str) -> None:
        with self._lock:
            self._commands.append((connection_id, line))

    def reply(self) -> None:
        with self._lock:
            self._round_trips += 1

    def closed_with_421(self) -> None:
        with self._lock:
            self._refused_421 += 1

    # -- read by tests ----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """TCP connections accepted since the last reset (those turned away with 421 included)."""
        with self._lock:
            return self._connections

    @property
    def active(self) -> int:
        """Connections open right now."""
        with self._lock:
            return self._active

    @property
    def peak_connections(self) -> int:
        """Most connections open at the same time (those turned away with 421 included)."""
        with self._lock:
            return self._peak

    @property
    def commands(self) -> list[tuple[int, str]]:
        """(connection id, command line as received without CRLF), in arrival order."""
        with self._lock:
            return list(self._commands)

    @property
    def rcpt_count(self) -> int:
        return self.count("RCPT")

    @property
    def data_commands(self) -> int:
        """DATA and BDAT commands received: any non-zero value is a bug in the client."""
        with self._lock:
            return sum(1 for _, line in self._commands if verb_of(line) in DATA_VERBS)

    @property
    def refused_421(self) -> int:
        """Connections closed with a 421 (too many connections or too many invalid RCPTs)."""
        with self._lock:
            return self._refused_421

    @property
    def round_trips(self) -> int:
        """Round trips: the banner, then one per write of commands the server had to wait for
        (a pipelined flight of several commands counts once, as does a multi-line reply)."""
        with self._lock:
            return self._round_trips

    def count(self, verb: str) -> int:
        """How many commands with this verb were received (case-insensitive)."""
        wanted = verb.upper()
        with self._lock:
            return sum(1 for _, line in self._commands if verb_of(line) == wanted)

    def summary(self) -> dict[str, int]:
        """The counters, as plain numbers (what `serve_forever` reports)."""
        return {
            "connections": self.connections,
            "peak_connections": self.peak_connections,
            "round_trips": self.round_trips,
            "rcpt": self.rcpt_count,
            "data": self.data_commands,
            "refused_421": self.refused_421,
        }

    def reset(self) -> None:
        """Forget everything but the connections still open."""
        with self._lock:
            self._connections = 0
            self._peak = self._active
            self._commands.clear()
            self._round_trips = 0
            self._refused_421 = 0

    def __repr__(self) -> str:
        return (
            f"Recorder({self.host!r}, connections={self.connections}, "
            f"peak={self.peak_connections}, commands={len(self.commands)})"
        )
