"""The behaviour cache: what this process saw of each MX group, on top of what all processes saw.

The SMTP code reports every reply flight, timeout, 421 and slow banner as it happens, so
recording is a dict update and never I/O. Every few seconds `sync` hands what was seen since
the last sync to a `BehaviourStore` (PostgreSQL, shared by every worker and the API) and takes
back the shared view: a tarpit that one worker met is one that every worker gives up on sooner
(`adapt.adapted_timeouts`). Without a store (`mxprobe check`) the book is this process's alone.

The record is advisory: observations lost with a failed sync, or a process, only make the next
timeouts a little less fitted, so nothing here retries or blocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from app.engine.probes import stores
from app.engine.rules import adapt
from app.engine.rules.adapt import MxStats

log = logging.getLogger(__name__)


class BehaviourStore(Protocol):
    async def exchange(self, deltas: Mapping[str, MxStats]) -> dict[str, MxStats]:
        """Add `deltas` (what one process saw since its last exchange; each latency the mean
        of its replies) to the shared record, and return the shared view of every group
        seen recently, this process's deltas included. Raises `errors.StoreUnavailable` when
        the store cannot be reached."""
        ...


class _Tally:
    """What was seen of one group since the last drain."""

    __slots__ = ("busy", "replies", "seconds", "tarpits", "timeouts")

    def __init__(self) -> None:
        self.replies = 0
        self.seconds = 0.0
        self.timeouts = 0
        self.busy = 0
        self.tarpits = 0

    def stats(self) -> MxStats:
        return MxStats(
            replies=self.replies,
            latency_ewma=self.seconds / self.replies if self.replies else None,
            timeouts=self.timeouts,
            busy=self.busy,
            tarpits=self.tarpits,
        )


class MxBehaviour:
    """The book of MX behaviour, keyed by MX group (`providers.limit_key`)."""

    def __init__(self) -> None:
        self._shared: dict[str, MxStats] = {}
        self._local: dict[str, _Tally] = {}

    def _tally(self, key: str) -> _Tally:
        tally = self._local.get(key)
        if tally is None:
            tally = self._local[key] = _Tally()
        return tally

    def observe_reply(self, key: str, seconds: float) -> None:
        """A reply, or a pipelined flight of replies, came `seconds` after we sent."""
        tally = self._tally(key)
        tally.replies += 1
        tally.seconds += seconds

    def observe_timeout(self, key: str) -> None:
        """A command got no reply within its timeout."""
        self._tally(key).timeouts += 1

    def observe_busy(self, key: str) -> None:
        """A 421 "too many connections", or another busy banner."""
        self._tally(key).busy += 1

    def observe_tarpit(self, key: str, seconds: float) -> None:
        """The banner took `seconds`, at least `adapt.TARPIT_BANNER`, or never came within
        `seconds`. Only the count matters to the rule; `seconds` is what the caller saw."""
        self._tally(key).tarpits += 1

    def stats(self, key: str) -> MxStats | None:
        """The shared view of `key` with this process's observations since the last sync."""
        shared = self._shared.get(key)
        tally = self._local.get(key)
        if tally is None:
            return shared
        return tally.stats() if shared is None else adapt.merged(shared, tally.stats())

    def timeouts(self, key: str, *, connect: float, command: float) -> tuple[float, float]:
        """(connect timeout, command timeout) for a new session to `key`, given the
        configured ones; never longer than those."""
        return adapt.adapted_timeouts(self.stats(key), connect=connect, command=command)

    def drain(self) -> dict[str, MxStats]:
        """What was seen since the last drain, per group, to hand to the store."""
        local, self._local = self._local, {}
        return {key: tally.stats() for key, tally in local.items()}

    def absorb(self, snapshot: Mapping[str, MxStats]) -> None:
        """The shared view the store returned, which replaces the previous one."""
        self._shared = dict(snapshot)


async def sync(book: MxBehaviour, store: BehaviourStore) -> None:
    """One exchange: our observations out, the shared view in."""
    book.absorb(await store.exchange(book.drain()))


async def sync_every(
    book: MxBehaviour, store: BehaviourStore, *, interval: float, stop: asyncio.Event
) -> None:
    """Sync every `interval` seconds, and once more when `stop` is set, then return. A failed
    sync is logged and the next one tried: the probes go on with what the book knows. While
    the store is unavailable (`errors.StoreUnavailable`: a database outage), that is one line
    when it goes and one when a sync works again; any other error is logged with its traceback
    (see `stores.StoreWatch`)."""
    watch = stores.StoreWatch(
        log,
        doing="share MX behaviour",
        meanwhile=f"this process goes on with what it saw; trying again every {interval:g} s",
    )
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
        try:
            await sync(book, store)
        except Exception as exc:
            watch.failed(exc)
        else:
            watch.worked()
        if stop.is_set():
            return
