"""How many SMTP sessions may be open to one MX group (an MX host, or a whole provider).

A `Lease` is one slot, held from a session's connect until its QUIT. A group's budget is
learnt: it starts at one session and grows by one when asked (`grow`), up to the configured
limit; a 421 at connect sets it to the sessions that were open then (`refused`), and it does
not grow again until the cool-down has passed. The in-process limiter
here serves the CLI and single-process runs; the workers share one budget through PostgreSQL
(`app.db.mx_limits`), behind the same Protocol.

A `RateLimiter` spaces the RCPTs sent to one MX group (`max_msg_rate`, e.g. "9/m") the same
way: `LocalRateLimiter` here, `app.db.mx_rates.PostgresRateLimiter` across processes. It only
books send times and says how long to wait; the caller sleeps, so no lock is held meanwhile.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from app.engine import errors
from app.engine.rules.rates import Rate, Rates


@dataclass(frozen=True, slots=True)
class Lease:
    key: str
    token: int


class NoSlot(errors.EngineError):
    """Every slot of this MX group is taken (here or in another process) for now."""

    kind = "NoSlot"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key  # the MX group, when known


class MxLimiter(Protocol):
    async def try_acquire(self, key: str, *, waiting: bool = True) -> Lease | None:
        """A slot for MX group `key` if one is free right now, else None. Never waits long.
        `waiting`: recipients wait for it with no session of the group to serve them, so a
        refusal marks the group wanted (see `wanted`)."""
        ...

    async def release(self, lease: Lease) -> None: ...

    async def grow(self, key: str) -> None:
        """Allow group `key` one more session (up to its limit), unless it refused recently."""
        ...

    async def refused(self, key: str, *, seconds: float) -> None:
        """Group `key` refused a connection: for `seconds`, allow it only as many sessions as
        were open then (at least one), the refused one not counted."""
        ...

    async def wanted(self) -> set[str]:
        """The groups for which somebody was refused a slot within the last `WANTED_FOR`
        seconds: a session idling in one of them should give its slot back."""
        ...

    async def error_limit(self, key: str) -> int | None:
        """Unknown recipients a session to group `key` may carry, as learnt (None: not)."""
        ...

    async def learn_error_limit(self, key: str, limit: int) -> None:
        """Group `key` hung up on a session after too many unknown recipients: sessions carry
        at most `limit` from now on (the lowest learnt wins)."""
        ...


WANTED_FOR = 1.0
"""Seconds a refused `try_acquire` marks its group as wanted."""


class RateLimiter(Protocol):
    async def reserve(self, key: str, count: int = 1) -> float:
        """Book `count` RCPTs to MX group `key`; the seconds to wait before sending them
        (0.0 when the group has no rate limit or is under it). Never waits itself."""
        ...


class LocalMxLimiter:
    """In-process limits: sessions per MX group and in all."""

    def __init__(
        self, *, per_mx: int, total: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.per_mx = per_mx
        self.total = total
        self._overrides = dict(overrides or {})
        self._held: dict[str, int] = {}
        self._budgets: dict[str, int] = {}
        self._capped_until: dict[str, float] = {}
        self._wanted_at: dict[str, float] = {}
        self._error_limits: dict[str, int] = {}
        self._tokens = itertools.count()

    def limit(self, key: str) -> int:
        return self._overrides.get(key, self.per_mx)

    def budget(self, key: str) -> int:
        return min(self._budgets.get(key, 1), self.limit(key))

    async def try_acquire(self, key: str, *, waiting: bool = True) -> Lease | None:
        held = self._held.get(key, 0)
        if held >= self.budget(key) or sum(self._held.values()) >= self.total:
            if waiting:
                self._wanted_at[key] = time.monotonic()
            return None
        self._held[key] = held + 1
        return Lease(key, next(self._tokens))

    async def error_limit(self, key: str) -> int | None:
        return self._error_limits.get(key)

    async def learn_error_limit(self, key: str, limit: int) -> None:
        self._error_limits[key] = min(limit, self._error_limits.get(key, limit))

    async def wanted(self) -> set[str]:
        since = time.monotonic() - WANTED_FOR
        self._wanted_at = {k: at for k, at in self._wanted_at.items() if at > since}
        return set(self._wanted_at)

    async def grow(self, key: str) -> None:
        if time.monotonic() >= self._capped_until.get(key, 0.0):
            self._budgets[key] = min(self.budget(key) + 1, self.limit(key))

    async def refused(self, key: str, *, seconds: float) -> None:
        self._budgets[key] = max(1, self._held.get(key, 0) - 1)
        self._capped_until[key] = time.monotonic() + seconds

    async def release(self, lease: Lease) -> None:
        left = self._held.get(lease.key, 0) - 1
        if left > 0:
            self._held[lease.key] = left
        else:
            self._held.pop(lease.key, None)

    def in_use(self, key: str) -> int:
        return self._held.get(key, 0)


class LocalRateLimiter:
    """In-process send rates per MX group (GCRA without burst).

    Each group keeps the moment its next RCPT may go out; a reservation of `count` RCPTs
    takes the later of that moment and now, and moves it `count` intervals on. Groups with
    no rate (`default` None and no override) are never recorded.
    """

    def __init__(
        self,
        *,
        default: Rate | None = None,
        overrides: Mapping[str, Rate] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rates = Rates(default, dict(overrides or {}))
        self._clock = clock
        self._next_at: dict[str, float] = {}
        self._prune_above = 1024

    async def reserve(self, key: str, count: int = 1) -> float:
        span = self._rates.span(key, count)
        if not span:
            return 0.0
        now = self._clock()
        send_at = max(self._next_at.get(key, now), now)
        self._next_at[key] = send_at + span
        self._prune(now)
        return send_at - now

    def _prune(self, now: float) -> None:
        """Forget groups whose schedule is in the past (the same as never seen), so a default
        rate over millions of MX hosts does not grow without bound."""
        if len(self._next_at) <= self._prune_above:
            return
        self._next_at = {key: at for key, at in self._next_at.items() if at > now}
        self._prune_above = max(1024, 2 * len(self._next_at))
