"""SMTP session reuse: open sessions per MX, handed from one address to the next.

A session holds one slot of its MX group's budget (a `Lease` from the `MxLimiter`) from its
connect until its QUIT, so however many addresses share it, a server never sees more
connections than the limit allows. A session carries addresses until the provider's policy
says stop (recipients per session, unknown recipients per session), then QUITs; an idle one
QUITs after `idle_timeout` (0: after every use, i.e. one connection per address).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from app.engine.probes.limits import Lease, MxLimiter, NoSlot, RateLimiter
from app.engine.probes.smtp import ProbeSession
from app.engine.rules.providers import ProviderPolicy

# Recipients one MAIL FROM carries before RSET starts a new transaction (RFC 5321 §4.5.3.1.8
# asks servers to take at least 100).
RCPTS_PER_TRANSACTION = 50


@dataclass(frozen=True, slots=True)
class Route:
    """Everything two addresses must share to share a session."""

    mx_host: str
    address: str
    port: int
    hello_name: str
    from_email: str
    proxy: str | None
    limit_key: str


@dataclass(slots=True)
class _Pooled:
    session: ProbeSession
    lease: Lease
    domain: str | None = None  # the recipients' domain in the open transaction
    rcpts: int = 0
    transaction_rcpts: int = 0
    invalid: int = 0
    idle_since: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class Use:
    """One borrowing of a session: say what each RCPT was with `counted`."""

    session: ProbeSession
    reused: bool
    _pooled: _Pooled

    def counted(self, *, invalid: bool) -> None:
        self._pooled.rcpts += 1
        self._pooled.transaction_rcpts += 1
        self._pooled.invalid += int(invalid)


class SessionPool:
    def __init__(
        self,
        *,
        limiter: MxLimiter,
        idle_timeout: float = 5.0,
        slot_wait: float = 30.0,
        max_waiters: int | None = None,
        rates: RateLimiter | None = None,
    ) -> None:
        """`slot_wait`: how long a check waits for a slot of a busy MX group; `max_waiters`:
        how many checks may wait for one group at once before the next is told `NoSlot` at
        once (so a worker's tasks don't all queue behind one MX while others sit idle)."""
        self._limiter = limiter
        self._rates = rates
        self.idle_timeout = idle_timeout
        self._slot_wait = slot_wait
        self._max_waiters = max_waiters
        self._waiting: dict[str, int] = {}
        self._shed: dict[str, int] = {}
        self._shedding: set[asyncio.Task[None]] = set()
        self._idle: dict[Route, list[_Pooled]] = {}
        self._returned: dict[str, asyncio.Event] = {}
        self._reaper: asyncio.Task[None] | None = None
        self.sessions_opened = 0

    @contextlib.asynccontextmanager
    async def borrow(
        self,
        route: Route,
        *,
        policy: ProviderPolicy,
        domain: str,
        connect: Callable[[], Awaitable[ProbeSession]],
    ) -> AsyncIterator[Use]:
        """A session on `route`, in a transaction fit for a recipient at `domain`.

        An exception inside the block discards the session (QUIT, slot released)."""
        pooled, reused = await self._take(route, connect=connect)
        try:
            await self._prepare(pooled, policy=policy, domain=domain)
            yield Use(session=pooled.session, reused=reused, _pooled=pooled)
        except BaseException:
            await self._discard(pooled)
            raise
        await self._give_back(route, pooled, policy=policy)

    async def shed(self, key: str, *, seconds: float, at_most: int = 2) -> bool:
        """The MX group said it is busy (421) or stalled: hold one of its slots unused for
        `seconds`, so every process sharing the budget presses on it less for a while."""
        if self._shed.get(key, 0) >= at_most:
            return False
        lease = await self._limiter.try_acquire(key)
        if lease is None:
            return False
        self._shed[key] = self._shed.get(key, 0) + 1
        task = asyncio.create_task(self._unshed(lease, seconds), name=f"mxprobe-shed-{key}")
        self._shedding.add(task)
        task.add_done_callback(self._shedding.discard)
        return True

    def shed_slots(self, key: str) -> int:
        return self._shed.get(key, 0)

    async def _unshed(self, lease: Lease, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        finally:
            self._shed[lease.key] -= 1
            await self._limiter.release(lease)

    async def close(self) -> None:
        for task in list(self._shedding):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        idle, self._idle = self._idle, {}
        for sessions in idle.values():
            for pooled in sessions:
                await self._discard(pooled)

    async def _take(
        self, route: Route, *, connect: Callable[[], Awaitable[ProbeSession]]
    ) -> tuple[_Pooled, bool]:
        key = route.limit_key
        if self._max_waiters is not None and self._waiting.get(key, 0) >= self._max_waiters:
            raise NoSlot(f"{self._waiting[key]} checks already wait for an SMTP slot for {key}")
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            lease_or_idle = await self._wait_for_slot(route)
        finally:
            self._waiting[key] -= 1
        if isinstance(lease_or_idle, _Pooled):
            return lease_or_idle, True
        lease = lease_or_idle
        try:
            session = await connect()
        except BaseException:
            await self._limiter.release(lease)
            raise
        self.sessions_opened += 1
        return _Pooled(session=session, lease=lease), False

    async def _wait_for_slot(self, route: Route) -> _Pooled | Lease:
        """An idle session of ours on this route, or a fresh lease to open one."""
        deadline = time.monotonic() + self._slot_wait
        pause = 0.02
        while True:
            idle = self._idle.get(route)
            while idle:
                pooled = idle.pop()
                if pooled.session.is_open:
                    return pooled
                await self._discard(pooled)
            lease = await self._limiter.try_acquire(route.limit_key)
            if lease is not None:
                return lease
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoSlot(f"no free SMTP slot for {route.limit_key}")
            # Wake when one of our sessions to this group comes back; meanwhile poll the shared
            # budget with backoff (another process may free a slot).
            event = self._returned.setdefault(route.limit_key, asyncio.Event())
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(pause, remaining))
            pause = min(pause * 2, 0.25)

    async def _prepare(self, pooled: _Pooled, *, policy: ProviderPolicy, domain: str) -> None:
        session = pooled.session
        if session.in_transaction and (
            pooled.transaction_rcpts >= RCPTS_PER_TRANSACTION
            or (policy.one_domain_per_transaction and pooled.domain not in (None, domain))
        ):
            await session.reset()
        if not session.in_transaction:
            await session.mail()
            pooled.transaction_rcpts = 0
        pooled.domain = domain

    async def _give_back(self, route: Route, pooled: _Pooled, *, policy: ProviderPolicy) -> None:
        spent = (
            pooled.rcpts >= policy.max_rcpts_per_session
            or pooled.invalid >= policy.max_invalid_rcpts_per_session
        )
        if spent or self.idle_timeout <= 0 or not pooled.session.is_open:
            await self._discard(pooled)
        else:
            pooled.idle_since = time.monotonic()
            self._idle.setdefault(route, []).append(pooled)
            self._start_reaper()
        event = self._returned.get(route.limit_key)
        if event is not None:
            event.set()

    async def _discard(self, pooled: _Pooled) -> None:
        try:
            await pooled.session.close()
        finally:
            await self._limiter.release(pooled.lease)
            event = self._returned.get(pooled.lease.key)
            if event is not None:
                event.set()

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="mxprobe-session-reaper")

    async def _reap(self) -> None:
        """QUIT sessions idle for longer than `idle_timeout`."""
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout / 2))
            now = time.monotonic()
            for route, sessions in list(self._idle.items()):
                # Take the stale ones out first: a borrower may pop from the list while we
                # await a QUIT below.
                stale = [p for p in sessions if now - p.idle_since >= self.idle_timeout]
                for pooled in stale:
                    sessions.remove(pooled)
                if not sessions:
                    self._idle.pop(route, None)
                for pooled in stale:
                    with contextlib.suppress(Exception):
                        await self._discard(pooled)
