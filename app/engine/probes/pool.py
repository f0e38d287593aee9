"""SMTP session reuse and pipelining: per route, a few open sessions serve a queue of recipients.

A check does not hold a session: it puts its recipient on its route's queue (`SessionPool.ask`)
and awaits the reply. The route's sessions, at most the MX group's budget (a `Lease` each, held
from connect to QUIT, so a server never sees more connections than the limit allows), take
recipients off the queue in flights. Where the server advertises PIPELINING, a flight's RSET,
MAIL FROM and RCPT TOs go out in one write and the replies come back in the same order, so
the n-th reply answers the n-th command (RFC 2920); elsewhere each command waits for its reply.

A session carries recipients until the provider's policy says stop (recipients per session,
unknown recipients per session), then QUITs; one with nothing to do QUITs after
`idle_timeout` (0: after its first recipient, i.e. one connection per address).

Sessions are opened by the `Opener` the pool is built with (the engine's opens real SMTP
sessions; a test's may script its replies). How many a group gets is learnt (slow start): the
first, then another only once recipients have waited behind our working sessions of the group
for longer than a flight takes, and the shared budget grows by one (`MxLimiter.grow`). A 421 at
connect ("too many connections") sets the group's budget, for every process sharing it, to the
sessions that were open when refused (`MxLimiter.refused`), and the recipients wait for a
session instead of failing.

The limiter (and the rate limiter) may be shared through a database that goes away for a
while: its calls then raise `errors.StoreUnavailable`, and any limiter may have a bug that
raises anything. Neither ends the pool's background tasks nor loses a recipient: no new
session opens while no slot can be taken (the recipients wait, as for a busy group, and after
`slot_wait` with no session of ours serving them are told `NoSlot`, to try again), sessions
already open carry on, what the limiter only advises (learnt limits, who waits for a slot) is
done without, and once it answers again the group grows as before. The log has one line when
it stops answering and one when it answers again (`stores.StoreWatch`); other errors are
logged with their traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from app.engine import errors
from app.engine.config import ProxyConfig
from app.engine.observer import NO_OBSERVER, Observer
from app.engine.probes import stores
from app.engine.probes.behaviour import MxBehaviour
from app.engine.probes.limits import Lease, MxLimiter, NoSlot, RateLimiter
from app.engine.probes.smtp import Flight, Reply, rcpt_to
from app.engine.rules import replies
from app.engine.rules.providers import ProviderPolicy
from app.engine.rules.replies import Outcome

log = logging.getLogger(__name__)
T = TypeVar("T")

# Recipients one MAIL FROM carries before RSET starts a new transaction (RFC 5321 §4.5.3.1.8
# asks servers to take at least 100).
RCPTS_PER_TRANSACTION = 50
# RCPTs in one pipelined write (the invalid-recipient budget usually caps it lower).
RCPTS_PER_FLIGHT = 20
# Seconds a closed session keeps its slot.
CLOSE_GRACE = 0.05
# 421s at connect, in a row, after which a route's waiting recipients are told (and try the
# next MX): a server that refuses even our first session is not waiting for ours to end.
MAX_REFUSALS = 3
# Seconds to wait after a 421 at connect before the route tries again (doubled each time).
REFUSAL_PAUSE = 0.5
# How often an idle session asks whether anyone (any process) waits for its group's slots.
WANTED_POLL = 0.25
# Seconds recipients wait for a slot held by others (no session of ours on the route) before
# the group grows: an idle holder gives its slot back within WANTED_POLL, so one that has not
# by then is working.
GROW_AFTER = 1.0
# After giving back a slot somebody else waits for, how long we leave it to them.
YIELD_FOR = 0.3


@dataclass(frozen=True, slots=True)
class Route:
    """Everything two addresses must share to share a session."""

    mx_host: str
    address: str
    port: int
    hello_name: str
    from_email: str
    proxy: ProxyConfig | None
    limit_key: str


class Session(Protocol):
    """What the pool needs of an open SMTP session (`smtp.ProbeSession` is the real one)."""

    @property
    def mx_host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def pipelining(self) -> bool: ...
    @property
    def smtputf8(self) -> bool: ...
    @property
    def is_open(self) -> bool: ...
    def mail_from(self, *, utf8: bool) -> str: ...
    async def exchange(self, lines: Sequence[str]) -> Flight: ...
    async def close(self) -> None: ...


Opener = Callable[[Route], Awaitable[Session]]
"""Opens a session on a route, or raises `errors.SmtpError` (a 421 banner as
`SmtpProtocolError` with code 421)."""


class ConnectFailed(errors.EngineError):
    """No session of the route could be opened: the caller tries the next route (MX)."""

    kind = "ConnectFailed"

    def __init__(self, error: errors.SmtpError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class Answer:
    """The server's reply to one recipient, and to the catch-all probe of its domain if one
    went out in the same flight."""

    reply: Reply
    catch_all: Reply | None
    mx_host: str
    port: int


@dataclass(slots=True, eq=False)
class _Ask:
    recipient: str
    domain: str
    catch_all_probe: str | None  # a random recipient at `domain`, to ask alongside
    future: asyncio.Future[Answer]
    retried: bool = False
    queued_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True, eq=False)
class _Lane:
    """One route: its queue of recipients and the sessions serving it."""

    route: Route
    policy: ProviderPolicy
    queue: deque[_Ask] = field(default_factory=deque)
    work: asyncio.Event = field(default_factory=asyncio.Event)
    runners: int = 0
    starting: int = 0  # runners still connecting
    idle: int = 0
    flying: int = 0  # sessions in a flight after which they will carry more
    refusals: int = 0  # 421s at connect in a row
    hiring: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Session:
    session: Session
    lease: Lease
    domain: str | None = None  # the recipients' domain in the open transaction
    in_transaction: bool = False
    utf8: bool = False  # the open transaction was started with SMTPUTF8
    rcpts: int = 0
    transaction_rcpts: int = 0
    invalid: int = 0
    over: bool = False  # the server hung up or said 421 (closing): carry nothing more
    carries_on: bool = True  # the flight being boarded leaves room for more recipients
    probed: dict[str, Reply] = field(default_factory=dict)  # catch-all probe replies by domain


class SessionPool:
    def __init__(
        self,
        *,
        opener: Opener,
        limiter: MxLimiter,
        idle_timeout: float = 5.0,
        slot_wait: float = 30.0,
        max_waiters: int | None = None,
        rates: RateLimiter | None = None,
        behaviour: MxBehaviour | None = None,
        busy_cooldown: float = 60.0,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        """`opener`: opens a session on a route; `slot_wait`: how long a recipient waits on its
        route's queue, while no session of ours serves it, before `NoSlot`; `max_waiters`: how
        many may wait on a route's queue before the next is told `NoSlot` at once (so a
        worker's checks don't all queue behind one MX while others sit idle); `rates`:
        per-MX-group send rates, if any; `behaviour`: where each flight's latency and timeouts
        are recorded; `busy_cooldown`: how long a budget learnt from a 421 holds;
        `observer`: told of sessions opening and closing, 421s at connect, timeouts and
        round trips."""
        self.observer = observer
        self._opener = opener
        self._limiter = limiter
        self.behaviour = behaviour or MxBehaviour()
        self._rates = rates
        self.idle_timeout = idle_timeout
        self._slot_wait = slot_wait
        self._max_waiters = max_waiters
        self._busy_cooldown = busy_cooldown
        self._lanes: dict[Route, _Lane] = {}
        self._returned: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._flight_time: dict[str, float] = {}  # seconds a flight takes, per MX group
        self._grown_at: dict[str, float] = {}
        self._wanted: set[str] = set()
        self._error_limits: dict[str, int] = {}  # unknown recipients a group hung up after
        self._wanted_read = 0.0
        self._yielded_at: dict[str, float] = {}
        self._closing = False
        self._unreleased: list[Lease] = []  # slots whose release raised: given back later
        self._limits = stores.StoreWatch(
            log,
            doing="reach the MX limiter",
            meanwhile="no new SMTP session opens until it answers; open ones carry on",
        )
        self._rates_watch = stores.StoreWatch(
            log,
            doing="book MX send rates",
            meanwhile="recipients wait for it (then are told to try again)",
        )

    async def ask(
        self,
        route: Route,
        *,
        policy: ProviderPolicy,
        recipient: str,
        domain: str,
        catch_all_probe: str | None,
    ) -> Answer:
        """The reply to RCPT TO `recipient` on a session of `route`.

        Raises `ConnectFailed` when no session of the route could open, `errors.SmtpError`
        when the session broke before replying (after one more try on another session, if
        the broken one had served before), or `NoSlot`."""
        if self._closing:
            raise NoSlot("the session pool is closing")
        lane = self._lanes.get(route)
        if lane is None:
            lane = self._lanes[route] = _Lane(route, self._within_learnt(policy, route.limit_key))
        if self._max_waiters is not None and len(lane.queue) >= self._max_waiters:
            self._staff(lane)  # those waiting are being served, or will be
            raise NoSlot(
                f"{len(lane.queue)} checks already wait for {route.mx_host}", key=route.limit_key
            )
        ask = _Ask(recipient, domain, catch_all_probe, asyncio.get_running_loop().create_future())
        lane.queue.append(ask)
        lane.work.set()
        self._staff(lane)
        try:
            # Waiting is bounded only while no session of ours serves (or is opening on) the
            # route; once one does, the recipient's turn comes.
            while not (await asyncio.wait({ask.future}, timeout=self._slot_wait))[0]:
                if ask in lane.queue and lane.runners == 0:
                    lane.queue.remove(ask)
                    raise NoSlot(f"no free SMTP slot for {route.limit_key}", key=route.limit_key)
            return await ask.future
        except asyncio.CancelledError:
            if ask in lane.queue:
                lane.queue.remove(ask)
            raise

    async def close(self) -> None:
        """QUIT every session, give back every slot, fail what still waits."""
        self._closing = True
        for lane in self._lanes.values():
            lane.work.set()
            while lane.queue:
                _settle(lane.queue.popleft(), NoSlot("the session pool is closing"))
            if lane.hiring is not None:
                lane.hiring.cancel()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):  # logged by the watch; nothing more to do
            await self._give_back_unreleased()

    def _spawn(self, coroutine: Awaitable[None], *, name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A background task is done: none ends with an error unseen (a bug, as they catch
        what the limiter and the sessions raise)."""
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s ended with an error", task.get_name(), exc_info=exc)

    async def _limiter_says(
        self, call: Callable[[], Awaitable[T]], *, otherwise: T, proof: bool = True
    ) -> T:
        """`call()`'s value, or `otherwise` when it raises (logged by the watch): what the
        limiter advises beyond slots (learnt limits, who waits) the pool does without for a
        while. `proof`: its success shows the limiter answers again (`wanted` succeeds during
        an outage, by design: nobody is known to wait)."""
        try:
            value = await call()
        except Exception as exc:
            self._limits.failed(exc)
            return otherwise
        if proof:
            self._limits.worked()
        return value

    # -- sessions for a lane ---------------------------------------------------------------

    def _staff(self, lane: _Lane) -> None:
        if lane.idle == 0 and (lane.hiring is None or lane.hiring.done()):
            lane.hiring = self._spawn(self._hire(lane), name="mxprobe-hire")

    def _overdue(self, lane: _Lane) -> bool:
        """Slow start: a recipient has waited behind working sessions for longer than a flight
        takes, so one more session would serve it sooner: behind ours in a flight, or, with
        none of ours on the route, for `GROW_AFTER` behind others' (an idle one would have
        given its slot back by then). Recipients that wait for a spent session of ours to be
        replaced are not behind a working one: the replacement comes anyway, and a second
        connection meanwhile is what a one-connection server refuses."""
        oldest = next((a for a in lane.queue if not a.future.done()), None)
        if oldest is None:
            return False
        waited = time.monotonic() - oldest.queued_at
        if lane.runners == 0:
            return waited > GROW_AFTER
        flight = self._flight_time.get(lane.route.limit_key)
        return flight is not None and lane.flying > 0 and waited > flight

    async def _grow(self, key: str) -> None:
        """One more session for the group (shared), at most once per flight time."""
        now = time.monotonic()
        if now - self._grown_at.get(key, 0.0) >= self._flight_time.get(key, WANTED_POLL):
            self._grown_at[key] = now
            await self._limiter.grow(key)

    async def _hire(self, lane: _Lane) -> None:
        """Open sessions, one connect at a time: the route's first as soon as the budget
        allows, more only while recipients are overdue (slow start). The shared budget is
        polled with backoff (another process may free a slot), and more slowly while sessions
        of ours serve the route: they will carry the waiting recipients anyway, pipelined."""
        key = lane.route.limit_key
        pause = 0.02
        while lane.queue and lane.idle == 0 and not self._closing:
            lease = None
            yielding = time.monotonic() - self._yielded_at.get(key, -YIELD_FOR) < YIELD_FOR
            if lane.starting == 0 and not yielding and (lane.runners == 0 or self._overdue(lane)):
                try:
                    lease = await self._acquire(lane)
                except Exception as exc:
                    # No slot can be taken for now (the database is down, say): the recipients
                    # wait, and the limiter is asked again after a pause.
                    self._limits.failed(exc)
                    await asyncio.sleep(self._limits.pause())
                    continue
                self._limits.worked()
            if lease is not None:
                lane.runners += 1
                lane.starting += 1
                self._spawn(self._serve(lane, lease), name=f"mxprobe-session-{key}")
                pause = 0.02
                continue
            event = self._returned.setdefault(key, asyncio.Event())
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=pause)
            pause = min(pause * 2, 0.25 if lane.runners else 0.1)

    async def _acquire(self, lane: _Lane) -> Lease | None:
        """A slot for the lane's group if one is free now, growing the group's budget first
        if recipients are overdue; raises what the limiter raises."""
        key = lane.route.limit_key
        await self._give_back_unreleased()
        lease = await self._limiter.try_acquire(key, waiting=lane.runners == 0)
        if lease is None and self._overdue(lane):
            await self._grow(key)
            lease = await self._limiter.try_acquire(key, waiting=lane.runners == 0)
        return lease

    async def _give_back_unreleased(self) -> None:
        """Release again the slots whose release raised (a limiter that lost its database
        gives nothing back, as the database dropped them: this is for any other error, after
        which a slot would be held for good); raises what the limiter raises."""
        while self._unreleased:
            await self._limiter.release(self._unreleased[0])
            del self._unreleased[0]

    async def _connect(self, lane: _Lane, lease: Lease) -> Session | None:
        """A session on the lane's route, or None (its recipients told, or left waiting)."""
        limit = await self._limiter_says(
            lambda: self._limiter.error_limit(lease.key), otherwise=None
        )
        if limit is not None:
            self._learn_error_limit(lease.key, limit)  # as another process learnt it
        try:
            session = await self._opener(lane.route)
        except errors.SmtpError as exc:
            busy = _says_busy(exc)
            if busy:
                self.observer.connect_refused(lease.key)
            elif isinstance(exc, errors.SmtpTimeout):
                self.observer.timed_out(lease.key, stage="connect")
            if busy or isinstance(exc, errors.SmtpTimeout):
                # The group wants fewer of our sessions: its budget becomes what was open.
                await self._limiter_says(
                    lambda: self._limiter.refused(lease.key, seconds=self._busy_cooldown),
                    otherwise=None,
                )
            if busy:
                lane.refusals += 1
                if lane.refusals < MAX_REFUSALS:
                    # Too many connections: the recipients wait for a session (ours, once one
                    # is free, or the next connect after a pause) instead of failing.
                    pause = REFUSAL_PAUSE * 2 ** (lane.refusals - 1)
                    await asyncio.sleep(pause * random.uniform(1, 2))
                    return None
            lane.refusals = 0
            if lane.runners == 1:  # nobody else serves this route: its queue can't wait
                while lane.queue:
                    _settle(lane.queue.popleft(), ConnectFailed(exc))
            return None
        lane.refusals = 0
        return session

    async def _serve(self, lane: _Lane, lease: Lease) -> None:
        """One session: open it, carry flights of recipients until the policy or the idle
        timeout says stop, QUIT, give the slot back."""
        flight: list[_Ask] = []
        state: _Session | None = None
        try:
            try:
                session = await self._connect(lane, lease)
            finally:
                lane.starting -= 1
            if session is None:
                return
            self._wake(lease.key)
            state = _Session(session, lease)
            self.observer.session_opened(lease.key)
            while not self._closing:
                flight = self._board(lane, state)
                if flight:
                    carries_on = int(state.carries_on)
                    lane.flying += carries_on
                    try:
                        await self._fly(lane, state, flight)
                    except Exception as exc:  # not the server's doing: tell its checks, stop
                        for ask in flight:
                            _settle(ask, exc)
                        break
                    finally:
                        lane.flying -= carries_on
                    flight = []
                    if self.idle_timeout <= 0 or self._spent(lane.policy, state):
                        break
                elif self.idle_timeout <= 0 or not await self._wait_for_work(lane):
                    break
        finally:
            for ask in flight:
                _settle(ask, errors.SmtpDisconnected("the session ended"))
            if state is not None:
                self.observer.session_closed(lease.key)  # first: a cancelled QUIT still ends it
                await state.session.close()
                # The server counts the connection until it has read our close: a moment more
                # before the slot is anyone else's, or it may see one connection too many.
                await asyncio.sleep(CLOSE_GRACE)
            lane.runners -= 1
            if not self._closing and lease.key in await self._wanted_now():
                # Taking turns: somebody else (another process, most likely) waits for this
                # group; the slot is theirs before our next session's.
                self._yielded_at[lease.key] = time.monotonic()
            try:
                await self._limiter.release(lease)
            except Exception as exc:
                self._limits.failed(exc)
                self._unreleased.append(lease)  # given back with the next slot taken
            self._wake(lease.key)
            if lane.queue and not self._closing:
                self._staff(lane)

    def _within_learnt(self, policy: ProviderPolicy, key: str) -> ProviderPolicy:
        limit = self._error_limits.get(key)
        if limit is None or limit >= policy.max_invalid_rcpts_per_session:
            return policy
        return dataclasses.replace(policy, max_invalid_rcpts_per_session=limit)

    def _learn_error_limit(self, key: str, limit: int) -> None:
        if limit < self._error_limits.get(key, limit + 1):
            self._error_limits[key] = limit
            for lane in self._lanes.values():
                if lane.route.limit_key == key:
                    lane.policy = self._within_learnt(lane.policy, key)

    def _observe(
        self, key: str, got: list[Reply], error: errors.SmtpError | None, *, pipelined: bool
    ) -> None:
        if got:  # the first reply of a flight: one round trip, however many lines it carried
            self.behaviour.observe_reply(key, got[0].elapsed_ms / 1000)
        # Round trips as the server saw them: one per flight where it pipelines, else one
        # per command (each reply's time counts from its own command).
        for reply in got[:1] if pipelined else got:
            self.observer.round_trip(key, reply.elapsed_ms / 1000)
        if isinstance(error, errors.SmtpTimeout):
            self.behaviour.observe_timeout(key)
            self.observer.timed_out(key, stage="command")

    def _timed(self, key: str, took: float) -> None:
        """A flight took `took` seconds, from its write to its last reply."""
        before = self._flight_time.get(key)
        self._flight_time[key] = took if before is None else 0.7 * before + 0.3 * took

    def _wake(self, key: str) -> None:
        """A session of group `key` connected or ended: hiring may go on."""
        event = self._returned.get(key)
        if event is not None:
            event.set()

    async def _wait_for_work(self, lane: _Lane) -> bool:
        """Idle until work comes (True), or until the idle timeout, or until somebody else
        (any process) waits for a slot of the group: an idle session holding the slot it
        wants would make it wait for nothing."""
        deadline = time.monotonic() + self.idle_timeout
        lane.idle += 1
        try:
            while not lane.queue and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or lane.route.limit_key in await self._wanted_now():
                    return False
                lane.work.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.work.wait(), timeout=min(remaining, WANTED_POLL))
            return not self._closing
        finally:
            lane.idle -= 1

    async def _wanted_now(self) -> set[str]:
        """The groups somebody could not get a slot of just now (read at most every
        `WANTED_POLL` seconds, however many sessions idle)."""
        if time.monotonic() - self._wanted_read >= WANTED_POLL:
            self._wanted_read = time.monotonic()
            self._wanted = await self._limiter_says(
                self._limiter.wanted, otherwise=set(), proof=False
            )
        return self._wanted

    def _spent(self, policy: ProviderPolicy, state: _Session) -> bool:
        return (
            state.over
            or not state.session.is_open
            or state.rcpts >= policy.max_rcpts_per_session
            or state.invalid >= policy.max_invalid_rcpts_per_session
        )

    def _board(self, lane: _Lane, state: _Session) -> list[_Ask]:
        """Recipients for the next flight, off the front of the queue: as many as the session
        may still carry, counting each (and each catch-all probe) as a possible unknown
        recipient; of one domain where the provider wants one domain per transaction."""
        policy = lane.policy
        room = min(
            policy.max_rcpts_per_session - state.rcpts,
            policy.max_invalid_rcpts_per_session - state.invalid,
            RCPTS_PER_FLIGHT if self.idle_timeout > 0 else 1,
        )
        taken: list[_Ask] = []
        probing: set[str] = set()
        domain: str | None = None
        for ask in list(lane.queue):
            if policy.one_domain_per_transaction and domain not in (None, ask.domain):
                continue
            cost = 1 + int(ask.catch_all_probe is not None and ask.domain not in probing)
            if cost > room and taken:
                break
            lane.queue.remove(ask)
            if ask.future.done():  # its check gave up
                continue
            taken.append(ask)
            room -= cost
            domain = ask.domain
            if ask.catch_all_probe is not None:
                probing.add(ask.domain)
            if room <= 0:
                break
        costs = len(taken) + len(probing)
        state.carries_on = (
            policy.max_rcpts_per_session - state.rcpts - costs > 0
            and policy.max_invalid_rcpts_per_session - state.invalid - costs > 0
        )
        return taken

    async def _reserve(self, key: str, count: int) -> None:
        """Wait until `count` more RCPTs may go to group `key` (its send rate, if any). While
        the rate limiter's store is unavailable, wait for it, up to `slot_wait`: then
        `NoSlot`, so that the flight's recipients try again later, and are never sent faster
        than the rate allows. Any other error of the rate limiter is raised."""
        if self._rates is None:
            return
        deadline = time.monotonic() + self._slot_wait
        while True:
            try:
                delay = await self._rates.reserve(key, count)
            except errors.StoreUnavailable as exc:
                self._rates_watch.failed(exc)
                if self._closing or time.monotonic() >= deadline:
                    raise NoSlot(f"no send rate for {key}: {exc}", key=key) from exc
                await asyncio.sleep(self._rates_watch.pause())
                continue
            self._rates_watch.worked()
            if delay > 0:
                await asyncio.sleep(delay)
            return

    async def _fly(self, lane: _Lane, state: _Session, flight: list[_Ask]) -> None:
        """Send the flight's commands, match the replies to the recipients, settle each."""
        session = state.session
        policy = lane.policy
        reused = state.rcpts > 0
        for ask in [a for a in flight if not (a.recipient.isascii() or session.smtputf8)]:
            flight.remove(ask)
            _settle(ask, errors.SmtpProtocolError(f"{session.mx_host} does not take SMTPUTF8"))
        if not flight:
            return
        utf8 = not all(a.recipient.isascii() for a in flight)
        prelude: list[str] = []
        if state.in_transaction and (
            state.transaction_rcpts + len(flight) > RCPTS_PER_TRANSACTION
            or (policy.one_domain_per_transaction and state.domain != flight[0].domain)
            or (utf8 and not state.utf8)
        ):
            prelude.append("RSET")
        if prelude or not state.in_transaction:
            prelude.append(session.mail_from(utf8=utf8))
        await self._reserve(lane.route.limit_key, len(flight))
        started = time.monotonic()
        got, error = await _exchange(session, [*prelude, *(rcpt_to(a.recipient) for a in flight)])
        self._observe(lane.route.limit_key, got, error, pipelined=session.pipelining)
        if error is None:
            self._timed(lane.route.limit_key, time.monotonic() - started)
        answered: dict[int, Reply] = {}
        probes: list[Reply] = []
        refusal = _refused(prelude, got)
        if refusal is not None or len(got) < len(prelude):
            state.in_transaction = False
            error = refusal or error
        else:
            if prelude:
                state.in_transaction, state.transaction_rcpts, state.utf8 = True, 0, utf8
            state.domain = flight[0].domain
            answered = {id(a): r for a, r in zip(flight, got[len(prelude) :], strict=False)}
            # A domain's catch-all probe only once one of its recipients was accepted (a
            # refusal settles it already), all of them in one more flight.
            wanted = {
                a.domain: a.catch_all_probe
                for a in flight
                if a.catch_all_probe is not None
                and a.domain not in state.probed
                and 200 <= answered.get(id(a), _NO_REPLY).code < 300
            }
            if wanted and error is None:
                await self._reserve(lane.route.limit_key, len(wanted))
                more, error = await _exchange(session, [rcpt_to(p) for p in wanted.values()])
                self._observe(lane.route.limit_key, more, error, pipelined=session.pipelining)
                state.probed.update(zip(wanted, more, strict=False))
                probes = more
            for heard in [*answered.values(), *probes]:
                state.rcpts += 1
                state.transaction_rcpts += 1
                outcome = replies.classify_reply(heard.code, heard.message).outcome
                state.invalid += int(outcome is Outcome.INVALID)

        state.over = error is not None or any(r.code == 421 for r in answered.values())
        if state.over and state.invalid:
            # Hung up on after `state.invalid` unknown recipients (Postfix's
            # smtpd_hard_error_limit, say): from now on, one fewer per session, so that a
            # session ends with its QUIT answered rather than with "too many errors".
            limit = max(1, state.invalid - 1)
            self._learn_error_limit(lane.route.limit_key, limit)
            await self._limiter_says(
                lambda: self._limiter.learn_error_limit(lane.route.limit_key, limit),
                otherwise=None,
            )
        requeue: list[_Ask] = []
        for ask in flight:
            reply = answered.get(id(ask))
            if reply is not None and (reply.code != 421 or ask.retried):
                probe = state.probed.get(ask.domain) if ask.catch_all_probe else None
                _settle(ask, Answer(reply, probe, session.mx_host, session.port))
            elif not ask.retried and (reply is not None or _worth_retry(error, reused=reused)):
                # The server said 421 (closing) or hung up before answering: once more, on
                # another session.
                ask.retried = True
                requeue.append(ask)
            else:
                _settle(ask, error or errors.SmtpDisconnected("no reply"))
        if requeue:
            lane.queue.extendleft(reversed(requeue))
            lane.work.set()


_NO_REPLY = Reply(0, "", 0)


async def _exchange(
    session: Session, lines: list[str]
) -> tuple[list[Reply], errors.SmtpError | None]:
    """The replies to `lines`, in order: in one write where the server pipelines, else one
    command at a time (stopping at the first refusal that is not an RCPT's)."""
    if session.pipelining:
        sent = await session.exchange(lines)
        return sent.replies, sent.error
    got: list[Reply] = []
    for line in lines:
        sent = await session.exchange([line])
        got += sent.replies
        if sent.error is not None:
            return got, sent.error
        if not line.startswith("RCPT") and not 200 <= sent.replies[0].code < 300:
            break
    return got, None


def _refused(prelude: list[str], got: list[Reply]) -> errors.SmtpProtocolError | None:
    """RSET or MAIL FROM refused: nothing that followed in the flight was heard."""
    for line, reply in zip(prelude, got, strict=False):
        if not 200 <= reply.code < 300:
            return errors.SmtpProtocolError(
                f"{line.split(':')[0]} refused: {reply.code} {reply.message}",
                code=reply.code,
                reply=reply.message,
            )
    return None


def _says_busy(error: errors.SmtpError) -> bool:
    """A 421 at connect: "too many connections", or another way of saying come back later."""
    return isinstance(error, errors.SmtpProtocolError) and error.code == 421


def _worth_retry(error: errors.SmtpError | None, *, reused: bool) -> bool:
    """Once more on another session: after a hang-up, or a 421 (closing) from a session that
    had served before. Not after a timeout: a tarpit would only make the check wait twice."""
    if isinstance(error, errors.SmtpTimeout):
        return False
    if isinstance(error, errors.SmtpProtocolError):
        return reused and error.code == 421
    return True


def _settle(ask: _Ask, outcome: Answer | BaseException) -> None:
    if ask.future.done():  # its check gave up waiting
        return
    if isinstance(outcome, Answer):
        ask.future.set_result(outcome)
    else:
        ask.future.set_exception(outcome)
