"""What the engine tells whoever counts: a hook called as things happen, doing nothing here.

The engine imports no metrics library. An adapter (the API, a worker) hands the resolver, the
session pool and the verifier an `Observer` whose methods count (`app.metrics`); left out,
this one does nothing. The calls come from the event loop, one at a time, and must not block
or raise: a counter's increment, not I/O.

`group` is the MX group (`rules.providers.limit_key`: one MX host, or all of a provider's),
the key every per-MX budget and behaviour record uses.
"""

from __future__ import annotations

from typing import Literal

from app.engine.model import CheckEmailOutput

TimeoutStage = Literal["connect", "command"]


class Observer:
    """The no-op default; subclass it and override what you count."""

    def session_opened(self, group: str) -> None:
        """An SMTP session of `group` is open (banner, EHLO and STARTTLS done)."""

    def session_closed(self, group: str) -> None:
        """A session `session_opened` reported has ended (QUIT, hang-up or error)."""

    def connect_refused(self, group: str) -> None:
        """A connect to `group` was answered 421 ("too many connections", busy)."""

    def timed_out(self, group: str, *, stage: TimeoutStage) -> None:
        """No banner/EHLO within the connect timeout (`connect`), or no reply to a command
        within the command timeout (`command`)."""

    def round_trip(self, group: str, seconds: float) -> None:
        """A write of commands (one, or a pipelined flight) got its first reply `seconds`
        after it was sent."""

    def dns_lookup(self, *, cached: bool) -> None:
        """A name was looked up: answered from the resolver's cache (or shared with the same
        look-up in flight), or `cached=False`, asked of a nameserver."""

    def verified(self, output: CheckEmailOutput, *, seconds: float) -> None:
        """The engine reached a verdict for one address (every attempt: a greylisted address
        retried later is reported again), in `seconds`."""


NO_OBSERVER = Observer()
