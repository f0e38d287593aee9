"""The pipeline: syntax → MX → RCPT (+ catch-all, once per domain) → verdict → Reacher's output."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from app.engine import errors
from app.engine.config import ProbeConfig, ProxyConfig
from app.engine.model import (
    CheckEmailOutput,
    CoreError,
    DebugDetails,
    DebugSmtp,
    Duration,
    MiscDetails,
    MxDetails,
    MxError,
    PolicyDebug,
    ProbeDebug,
    SmtpDetails,
    SmtpError,
    SyntaxDetails,
    VerifMethod,
    VerifParams,
)
from app.engine.observer import NO_OBSERVER, Observer
from app.engine.probes.behaviour import MxBehaviour
from app.engine.probes.catchall import CatchAllStore, MemoryCatchAllStore, probe_local_part
from app.engine.probes.dns import MxHost, MxLookup, Resolver, is_public_address
from app.engine.probes.limits import LocalMxLimiter, MxLimiter, NoSlot
from app.engine.probes.pool import Answer, ConnectFailed, Route, SessionPool
from app.engine.probes.proxy import resolved_proxy
from app.engine.probes.smtp import ProbeSession, Reply
from app.engine.probes.transcript import Transcript
from app.engine.rules import (
    adapt,
    lists,
    providers,
    replies,
    spf,
    syntax,
    trust,
    username,
    verdict,
)
from app.engine.rules.replies import Category, Outcome

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """Reacher's request body, minus what the engine does not need to know about HTTP."""

    to_email: str
    from_email: str | None = None
    hello_name: str | None = None
    proxy: ProxyConfig | None = None
    smtp_ports: tuple[int, ...] | None = None
    # The verdict policy for this check ("none" | "trusted_providers_only"); None: the config's.
    policy: str | None = None
    # MX hosts to probe, in order, instead of the domain's (host names or IP literals, still
    # under the private-address rule); no MX or SPF query is made for the domain.
    mx_hosts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    """A check's output, and whether the address should be tried again later (a greylisting
    or other temporary answer, or no free slot at its MX): the decision, not a reading of the
    output's debug text."""

    output: CheckEmailOutput
    try_again: bool


class ProbeOpener:
    """Opens SMTP sessions for the pool: timeouts fitted to what was seen of the MX group,
    tarpits and busy banners recorded."""

    def __init__(
        self, config: ProbeConfig, behaviour: MxBehaviour, *, transcript: Transcript | None = None
    ) -> None:
        """`transcript`: every session writes its conversation there (`mxprobe check
        --transcript`)."""
        self._config = config
        self._behaviour = behaviour
        self._transcript = transcript

    async def __call__(self, route: Route) -> ProbeSession:
        key = route.limit_key
        connect_timeout, command_timeout = self._behaviour.timeouts(
            key, connect=self._config.connect_timeout, command=self._config.smtp_timeout
        )
        session = ProbeSession(
            mx_host=route.mx_host,
            address=route.address,
            port=route.port,
            hello_name=route.hello_name,
            from_email=route.from_email,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            proxy=route.proxy,
            starttls=self._config.starttls,
            transcript=self._transcript,
        )
        started = time.monotonic()
        try:
            await session.open()
        except errors.SmtpTimeout:
            self._behaviour.observe_tarpit(key, time.monotonic() - started)
            raise
        except errors.SmtpProtocolError as exc:
            if exc.code == 421:
                self._behaviour.observe_busy(key)
            raise
        if (took := time.monotonic() - started) >= adapt.TARPIT_BANNER:
            self._behaviour.observe_tarpit(key, took)
        return session


@dataclass(slots=True)
class _Probe:
    """What the SMTP step concluded."""

    smtp: SmtpDetails | SmtpError
    debug: ProbeDebug | None = None
    host: str | None = None
    port: int | None = None
    temporary: bool = False


@dataclass(slots=True)
class _Attempt:
    errors: list[errors.EngineError] = field(default_factory=list)


class Verifier:
    """Checks addresses. Holds the resolver, the catch-all memory and the MX limiter."""

    def __init__(
        self,
        config: ProbeConfig,
        *,
        resolver: Resolver,
        catch_all: CatchAllStore | None = None,
        limiter: MxLimiter | None = None,
        pool: SessionPool | None = None,
        raise_no_slot: bool = False,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        """`raise_no_slot`: when an MX group has no free slot, raise `NoSlot` (a queue worker
        re-defers the task) instead of answering `unknown`. `observer`: told of each verdict
        (and, through the pool built here when none is given, of its SMTP sessions)."""
        self.config = config
        self.observer = observer
        self.raise_no_slot = raise_no_slot
        self.resolver = resolver
        self.catch_all = catch_all or MemoryCatchAllStore(ttl=config.catch_all_ttl)
        if pool is None:
            behaviour = MxBehaviour()
            pool = SessionPool(
                opener=ProbeOpener(config, behaviour),
                limiter=limiter or LocalMxLimiter(per_mx=5, total=1000),
                idle_timeout=config.session_idle_timeout,
                slot_wait=config.slot_wait,
                behaviour=behaviour,
                busy_cooldown=config.busy_cooldown,
                observer=observer,
            )
        self.pool = pool
        self._overrides = {o.key: o for o in config.mx_overrides}
        self._trusted = trust.trusted_list(config.trusted_providers)
        self._policy_default = trust.Policy(config.policy)
        self._secret = f"{config.hello_name}|{config.from_email}"

    async def close(self) -> None:
        """QUIT every pooled session (and free their slots)."""
        await self.pool.close()

    def _policy(self, mx_host: str) -> providers.ProviderPolicy:
        policy = providers.policy_for(providers.provider_from_mx(mx_host))
        override = self._overrides.get(providers.limit_key(mx_host))
        if override is None:
            return policy
        return dataclasses.replace(
            policy,
            max_rcpts_per_session=override.max_msg_per_connection or policy.max_rcpts_per_session,
            max_invalid_rcpts_per_session=(
                override.max_errors_per_connection or policy.max_invalid_rcpts_per_session
            ),
        )

    async def check(self, request: CheckRequest) -> CheckEmailOutput:
        """Reacher's output for one address."""
        return (await self.verify(request)).output

    async def verify(self, request: CheckRequest) -> Verification:
        """The output, and whether a queue should try the address again later."""
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        hello_name = request.hello_name or self.config.hello_name
        from_email = request.from_email or self.config.from_email
        ports = request.smtp_ports or self.config.smtp_ports
        proxy = await resolved_proxy(request.proxy or self.config.proxy, self.resolver.addresses)
        for value in (hello_name, from_email):
            if syntax.has_control_chars(value):
                raise errors.UnsafeAddress(f"refusing {value!r}: it contains control characters")

        parsed = syntax.parse_address(request.to_email)
        syntax_details = _syntax_details(parsed)
        misc = MiscDetails()
        mx: MxDetails | MxError = MxDetails(accepts_mail=False, records=[])
        probe = _Probe(smtp=SmtpDetails())
        provider: str | None = None

        first_mx: str | None = None
        if parsed.is_valid:
            named = username.score(parsed.username)
            misc = MiscDetails(
                is_disposable=lists.is_disposable(parsed.ascii_domain),
                is_role_account=lists.is_role_account(parsed.username),
                is_b2c=lists.is_b2c(parsed.ascii_domain),
                username_entropy=named.entropy,
                is_random_looking=named.is_random_looking,
            )
            # The SPF (TXT) query runs alongside the MX query and the probe: it makes the
            # check wait only if it is slower than both.
            async with _alongside(self._spf(parsed.ascii_domain, request.mx_hosts)) as spf_job:
                lookup = await self._mx(parsed.ascii_domain, request.mx_hosts)
                if isinstance(lookup, MxLookup) and lookup.accepts_mail:
                    first_mx = lookup.hosts[0].exchange
                    provider = providers.provider_from_mx(lookup.hosts[0].exchange).value
                    ask = functools.partial(
                        self._probe,
                        parsed,
                        lookup,
                        hello_name=hello_name,
                        from_email=from_email,
                        ports=ports,
                        proxy=proxy,
                    )
                    probe = await ask()
                    wait = self.config.greylist_inline_retry
                    if probe.temporary and wait > 0:
                        # Greylisting is keyed by (client, sender, recipient): the same again.
                        await asyncio.sleep(wait)
                        probe = await ask()
                        if probe.debug is not None:
                            probe.debug = probe.debug.model_copy(update={"attempts": 2})
                spf_lookup, spf_error = await spf_job
            hosts: list[str] = []
            if isinstance(lookup, errors.DnsError):
                mx = MxError(error=CoreError(type=lookup.kind, message=str(lookup)))
            else:
                mx = MxDetails(accepts_mail=lookup.accepts_mail, records=lookup.records)
                hosts = [h.exchange for h in lookup.hosts] if lookup.accepts_mail else []
            misc = _with_provider(
                misc, trust.assess(hosts, spf_lookup, spf_error=spf_error, trusted=self._trusted)
            )

        reachable = verdict.is_reachable(
            syntax_valid=parsed.is_valid, mx=mx, smtp=probe.smtp, misc=misc
        )
        policy = trust.Policy(request.policy) if request.policy else self._policy_default
        policy_debug: PolicyDebug | None = None
        if policy is not trust.Policy.NONE:
            outcome = trust.apply_policy(
                policy,
                reachable,
                trusted=misc.provider_trusted,
                describe=f"{misc.provider} (MX {first_mx}, recognised from {misc.provider_source})",
            )
            reachable = outcome.verdict
            policy_debug = PolicyDebug(
                name=policy.value, changed_verdict=outcome.reason is not None, reason=outcome.reason
            )
        if probe.host is not None and probe.port is not None:
            method = VerifMethod(
                type="Smtp",
                host=f"{probe.host}.",
                verif_method=VerifParams(
                    from_email=from_email,
                    hello_name=hello_name,
                    proxy=proxy.public() if proxy else None,
                    smtp_port=probe.port,
                    smtp_timeout=Duration.from_seconds(self.config.smtp_timeout),
                    retries=probe.debug.attempts if probe.debug else 1,
                ),
            )
        else:
            method = VerifMethod(type="Skipped")
        output = CheckEmailOutput(
            input=request.to_email,
            is_reachable=reachable,
            misc=misc,
            mx=mx,
            smtp=probe.smtp,
            syntax=syntax_details,
            debug=DebugDetails(
                backend_name=self.config.backend_name,
                start_time=_rfc3339(started_at),
                end_time=_rfc3339(datetime.now(UTC)),
                duration=Duration.from_seconds(time.perf_counter() - started),
                smtp=DebugSmtp(verif_method=method),
                provider=provider,
                probe=probe.debug,
                policy=policy_debug,
            ),
        )
        self.observer.verified(output, seconds=time.perf_counter() - started)
        return Verification(output, try_again=probe.temporary)

    async def _mx(
        self, domain: str, explicit: tuple[str, ...] | None
    ) -> MxLookup | errors.DnsError:
        """The domain's MX hosts (or the request's own), or the DNS error that hid them."""
        if explicit:
            hosts = tuple(
                MxHost(10 * i, h.strip().lower().rstrip(".")) for i, h in enumerate(explicit)
            )
            return MxLookup(hosts=hosts, explicit=True)
        try:
            return await self.resolver.mx(domain)
        except errors.DnsError as exc:
            return exc

    async def _spf(
        self, domain: str, explicit: tuple[str, ...] | None
    ) -> tuple[spf.SpfLookup | None, str | None]:
        """The domain's SPF record (one TXT query), or why it could not be read; nothing when
        the request named its MX hosts (no DNS for the domain at all)."""
        if explicit:
            return None, None
        try:
            return spf.find(await self.resolver.txt(domain)), None
        except errors.DnsError as exc:
            return None, str(exc)

    async def _probe(
        self,
        parsed: syntax.ParsedAddress,
        lookup: MxLookup,
        *,
        hello_name: str,
        from_email: str,
        ports: tuple[int, ...],
        proxy: ProxyConfig | None,
    ) -> _Probe:
        domain = parsed.ascii_domain
        policy = self._policy(lookup.hosts[0].exchange)
        known = None if policy.skip_catch_all else await self.catch_all.get(domain)
        if known:
            # A catch-all accepts every recipient: asking again tells nothing and costs the
            # server a session.
            return _Probe(
                smtp=SmtpDetails(can_connect_smtp=True, is_catch_all=True, is_deliverable=True),
                debug=ProbeDebug(
                    category=Category.ACCEPT.value,
                    code=None,
                    message="catch-all domain (remembered)",
                    elapsed_ms=0,
                    mx_host=lookup.hosts[0].exchange,
                ),
            )
        attempt = _Attempt()
        check_catch_all = known is None and not policy.skip_catch_all
        for host in lookup.hosts:
            for address in await self._addresses(host, attempt, literal=lookup.explicit):
                for port in ports:
                    route = Route(
                        mx_host=host.exchange,
                        address=address,
                        port=port,
                        hello_name=hello_name,
                        from_email=from_email,
                        proxy=proxy,
                        limit_key=providers.limit_key(host.exchange),
                    )
                    try:
                        return await self._on_route(
                            route, parsed, policy=policy, check_catch_all=check_catch_all
                        )
                    except ConnectFailed as exc:
                        # Try the next port, address and MX: RFC 5321 §5.1.
                        attempt.errors.append(exc.error)
                    except NoSlot as exc:
                        if self.raise_no_slot:
                            raise
                        return _failed(exc, host=host.exchange, port=None)
        return _failed(
            _most_telling(attempt.errors),
            host=None,
            port=None,
            mx_host=lookup.hosts[0].exchange,
        )

    async def _on_route(
        self,
        route: Route,
        parsed: syntax.ParsedAddress,
        *,
        policy: providers.ProviderPolicy,
        check_catch_all: bool,
    ) -> _Probe:
        """Ask on a session of this route (the pool reuses and pipelines)."""
        domain = parsed.ascii_domain
        try:
            answer = await self.pool.ask(
                route,
                policy=policy,
                recipient=parsed.ascii_address,
                domain=domain,
                catch_all_probe=(
                    f"{probe_local_part(domain, secret=self._secret)}@{domain}"
                    if check_catch_all
                    else None
                ),
            )
        except errors.SmtpError as exc:
            return _failed(exc, host=route.mx_host, port=route.port)
        return await self._conclude(answer, domain)

    async def _addresses(self, host: MxHost, attempt: _Attempt, *, literal: bool) -> list[str]:
        """The host's addresses allowed to be probed. `literal`: the host may be an IP address
        as written (a request's own MX host), used as it is."""
        try:
            found = (
                [host.exchange]
                if literal and _is_ip(host.exchange)
                else await self.resolver.addresses(host.exchange)
            )
        except errors.DnsError as exc:
            attempt.errors.append(exc)
            return []
        if not found:
            attempt.errors.append(errors.SmtpConnectError(f"MX {host.exchange} has no address"))
        allowed = [a for a in found if self.config.allow_private_mx or is_public_address(a)]
        if found and not allowed:
            attempt.errors.append(
                errors.PrivateMxRefused(
                    f"MX {host.exchange} resolves to non-public addresses {', '.join(found)}; "
                    "not connecting (set MXPROBE_ALLOW_PRIVATE_MX=true to allow)"
                )
            )
        return allowed

    async def _conclude(self, answer: Answer, domain: str) -> _Probe:
        """The recipient's reply, read with its domain's catch-all probe (if one was asked)."""
        verdict = replies.classify_reply(answer.reply.code, answer.reply.message)
        is_catch_all = False
        if verdict.outcome is Outcome.INVALID:
            await self.catch_all.put(domain, False)  # a catch-all would not have refused
        elif verdict.outcome is Outcome.DELIVERABLE and answer.catch_all is not None:
            probe = replies.classify_reply(answer.catch_all.code, answer.catch_all.message)
            if probe.outcome is Outcome.DELIVERABLE:
                is_catch_all = True
                await self.catch_all.put(domain, True)
            elif probe.outcome is Outcome.INVALID:
                await self.catch_all.put(domain, False)
        return _Probe(
            smtp=_smtp_fields(verdict, is_catch_all=is_catch_all),
            debug=_probe_debug(answer.reply, verdict, host=answer.mx_host),
            host=answer.mx_host,
            port=answer.port,
            temporary=verdict.retryable,
        )


@contextlib.asynccontextmanager
async def _alongside(work: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    """`work` as a task owned by the block: await it inside. Leaving the block early (an
    error, a cancellation) cancels it and waits for its end, and the block's own exception
    propagates as it was (a TaskGroup would wrap it in an ExceptionGroup)."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the block's outcome is what counts


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _with_provider(misc: MiscDetails, assessment: trust.Assessment) -> MiscDetails:
    """`misc` with what was learnt of the domain's provider and SPF record."""
    fields: dict[str, object] = {"spf": assessment.spf}
    if assessment.hosting is not None:
        fields.update(
            provider=assessment.hosting.provider.value,
            provider_source=assessment.hosting.source,
            provider_trusted=assessment.trusted,
        )
    return misc.model_copy(update=fields)


def syntax_of(address: str) -> SyntaxDetails:
    """Reacher's `syntax` section for an address: what its parse says, nothing probed."""
    return _syntax_details(syntax.parse_address(address))


def _syntax_details(parsed: syntax.ParsedAddress) -> SyntaxDetails:
    return SyntaxDetails(
        address=parsed.address,
        domain=parsed.domain,
        is_valid_syntax=parsed.is_valid,
        username=parsed.username,
        normalized_email=parsed.normalized_email,
        suggestion=parsed.suggestion,
    )


def _smtp_fields(answer: replies.ReplyVerdict, *, is_catch_all: bool) -> SmtpDetails | SmtpError:
    match answer.outcome:
        case Outcome.DELIVERABLE:
            return SmtpDetails(
                can_connect_smtp=True, is_deliverable=True, is_catch_all=is_catch_all
            )
        case Outcome.INVALID:
            return SmtpDetails(can_connect_smtp=True)
        case Outcome.DISABLED:
            return SmtpDetails(can_connect_smtp=True, is_disabled=True)
        case Outcome.FULL_INBOX:
            return SmtpDetails(can_connect_smtp=True, has_full_inbox=True)
        case _:
            return SmtpError(
                error=CoreError(type="AsyncSmtpError", message=answer.error_message),
                description=answer.description,
            )


def _probe_debug(reply: Reply, answer: replies.ReplyVerdict, *, host: str) -> ProbeDebug:
    return ProbeDebug(
        category=answer.category.value,
        code=reply.code,
        message=reply.message,
        elapsed_ms=reply.elapsed_ms,
        mx_host=host,
    )


def _failed(
    exc: errors.EngineError, *, host: str | None, port: int | None, mx_host: str | None = None
) -> _Probe:
    """An SMTP step that never got an answer to RCPT: the verdict is `unknown`."""
    code: int | None = None
    temporary = False
    if isinstance(exc, errors.SmtpTimeout):
        error = CoreError(type="Timeout", message=str(exc))
    elif isinstance(exc, errors.SmtpProtocolError) and exc.code is not None:
        answer = replies.classify_reply(exc.code, exc.reply)
        code = exc.code
        temporary = 400 <= exc.code < 500
        error = CoreError(type="AsyncSmtpError", message=answer.error_message)
    elif isinstance(exc, errors.SmtpError):
        error = CoreError(type="AsyncSmtpError", message=str(exc))
    elif isinstance(exc, NoSlot):
        temporary = True  # the MX's budget is spent for now: later, not never
        error = CoreError(type=exc.kind, message=str(exc))
    else:
        error = CoreError(type=exc.kind, message=str(exc))
    category = Category.TEMP_FAIL if temporary else Category.UNKNOWN
    return _Probe(
        smtp=SmtpError(error=error),
        debug=ProbeDebug(
            category=category.value,
            code=code,
            message=str(exc),
            elapsed_ms=0,
            mx_host=host or mx_host,
        ),
        host=host,
        port=port,
        temporary=temporary,
    )


def _most_telling(seen: list[errors.EngineError]) -> errors.EngineError:
    """Of the errors met trying every MX, the one that says most: a 4xx (retry later) first."""
    for exc in seen:
        if isinstance(exc, errors.SmtpProtocolError) and exc.code and 400 <= exc.code < 500:
            return exc
    return seen[-1] if seen else errors.SmtpConnectError("no MX to try")


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
