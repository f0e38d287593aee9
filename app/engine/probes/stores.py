"""Watching a store shared with other processes (the MX limits, send rates and behaviour book:
PostgreSQL for the API and workers) for the log, and pacing the calls made while it is away.

Its adapter raises `errors.StoreUnavailable` when the store cannot be reached (a restart, an
outage, a failover). The caller goes on without it where what it shares is advisory, and waits
where it is a limit; either way, calls keep failing for as long as the outage lasts, and one
log line each would bury everything else (a 3-minute outage was 1,500 tracebacks of a
worker's 1,800 lines). A `StoreWatch` logs one line when the store goes away and one when it
answers again. Any other error is a bug: logged with its traceback, once for each kind in a
row of failures, the repeats only counted (a bug that fails every call is one traceback, not
one per call).
"""

from __future__ import annotations

import logging
import random
import time

from app.engine import errors

FIRST_PAUSE = 0.05
"""Seconds before the first retry of a failed call (doubled for each failure in a row)."""
MAX_PAUSE = 1.0
"""The longest pause between retries: one call a second per waiting caller is cheap, and the
store is used again within a second of its return."""


class StoreWatch:
    """One store, as its calls found it: answering, or failing since some moment."""

    def __init__(self, log: logging.Logger, *, doing: str, meanwhile: str) -> None:
        """`doing`: what the calls do, for "could not <doing>" and "can <doing> again"
        ("share MX behaviour"); `meanwhile`: what the process does while the store is away."""
        self._log = log
        self._doing = doing
        self._meanwhile = meanwhile
        self._since: float | None = None  # monotonic time of the first failure in a row
        self._logged: set[tuple[str, str]] = set()  # kinds of failure logged in this row
        self.failures = 0
        """Calls failed in a row (0: the last call worked)."""

    def failed(self, exc: Exception) -> None:
        """A call failed with `exc`: logged if it is the first failure of its kind in a row
        (every `StoreUnavailable` is of one kind, whatever the driver said)."""
        if self._since is None:
            self._since = time.monotonic()
        self.failures += 1
        unavailable = isinstance(exc, errors.StoreUnavailable)
        kind = ("", "") if unavailable else (type(exc).__qualname__, str(exc))
        if kind in self._logged:
            self._log.debug("could not %s (%d in a row): %r", self._doing, self.failures, exc)
            return
        self._logged.add(kind)
        if unavailable:
            self._log.warning("could not %s: %s; %s", self._doing, exc, self._meanwhile)
        else:
            self._log.error("could not %s; trying again later", self._doing, exc_info=exc)

    def worked(self) -> None:
        """A call worked: if the ones before it failed, one line says so."""
        if self._since is None:
            return
        failed = self.failures
        self._log.warning(
            "can %s again, after %d failed call%s in %.1f s",
            self._doing,
            failed,
            "" if failed == 1 else "s",
            time.monotonic() - self._since,
        )
        self._since = None
        self._logged.clear()
        self.failures = 0

    def pause(self) -> float:
        """Seconds to wait before calling again after `failures` in a row: doubling from
        `FIRST_PAUSE` up to `MAX_PAUSE`, jittered so that waiting callers do not call in step."""
        ceiling = min(MAX_PAUSE, FIRST_PAUSE * 2 ** min(max(self.failures - 1, 0), 20))
        return random.uniform(ceiling / 2, ceiling)
