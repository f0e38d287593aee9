"""The result cache: an adapter around the engine's `Verifier.verify`, shared by the single
checks (API, `mxprobe check`) and the bulk workers through PostgreSQL (`app.db.result_cache`).

A result younger than MXPROBE_RESULT_CACHE_TTL, for the same cache key, is returned instead of
probing again, with `debug.cache` saying so and how old it is. The key (`cache_key`) is the
address as probed (its local part as given, its domain lower-cased in A-labels) and every
request field that can change the answer, with the process's defaults filled in: `from_email`,
`hello_name`, the SMTP ports, the proxy (host, port, username, and a slow hash of its
password) and any other field of the engine's `CheckRequest` (the verdict policy, MX hosts
aimed at), plus the server's list of trusted providers. Only definite answers are kept:
a result that is `unknown`, that has an error in `mx` or `smtp`, or that should be tried again
later (greylisting) is neither stored nor reused; an address with invalid syntax skips the
cache (there is nothing to save).

Two checks of one key at the same time probe once: the first claims the key for as long as a
probe may take (`claim_for`), the second waits for its result (`wait=True`, single checks) or
is told to come back (`InFlight`, queue tasks). A claim whose result is not cacheable is
released, and whoever waited probes for itself.

`fresh=True` probes whatever the cache holds and stores the new result. A bulk job asked fresh
passes its creation time as `fresh_since` instead: results probed since the job began (its
own duplicate rows among them) are still reused.

While PostgreSQL is unreachable (`app.outage.is_outage`), checks probe without the cache and
store nothing in it; any other error of the cache is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outage
from app.db import result_cache
from app.db.session import make_engine, make_sessionmaker, session_scope
from app.engine import CheckEmailOutput, CheckRequest, Reachable, Verification, Verifier, syntax_of
from app.engine.config import ProbeConfig, ProxyConfig
from app.engine.model import CacheDebug, MxError, SmtpError
from app.engine.rules import syntax
from app.settings import Settings

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1
"""Seconds between looks at a key another check is probing (single checks)."""


class InFlight(Exception):
    """Another check is probing this address with these options now: ask again shortly."""


def cache_key(request: CheckRequest, config: ProbeConfig) -> tuple[str, str] | None:
    """(sha256 hex of the key, the address as probed), or None when the address's syntax is
    invalid (no probe, nothing to cache)."""
    parsed = syntax.parse_address(request.to_email)
    if not parsed.is_valid:
        return None
    email = f"{parsed.username}@{parsed.ascii_domain.lower()}"
    # Every field of the request; one it leaves unset as the config's field of that name
    # (from_email, hello_name, smtp_ports, proxy, policy, ...), which the engine then uses.
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        fields[f.name] = getattr(config, f.name, None) if value is None else value
    proxy = fields["proxy"]
    fields.update(
        to_email=email,
        proxy=None if proxy is None else _proxy_identity(proxy),
        # The server's own list changes an output's provider-trust fields.
        trusted_providers=getattr(config, "trusted_providers", None),
    )
    text = json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest(), email


def _proxy_identity(proxy: ProxyConfig) -> list[object]:
    """Host, port, username and a fingerprint of the password: another password may be
    refused, so it is another key; the fingerprint is a slow hash, so the stored key does not
    make the password cheap to guess."""
    password = None
    if proxy.password is not None:
        password = _password_fingerprint(
            proxy.host, proxy.port, proxy.username or "", proxy.password
        )
    return [proxy.host, proxy.port, proxy.username, password]


@functools.lru_cache(maxsize=256)
def _password_fingerprint(host: str, port: int, username: str, password: str) -> str:
    salt = f"mxprobe result cache|{host}|{port}|{username}".encode()
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=16).hex()


def cacheable(checked: Verification) -> bool:
    """Whether a result may be stored and reused: a definite answer, and no error."""
    output = checked.output
    return (
        not checked.try_again
        and output.is_reachable is not Reachable.UNKNOWN
        and not isinstance(output.mx, MxError)
        and not isinstance(output.smtp, SmtpError)
    )


class ResultCache:
    """The cache of one process's settings over its database (None: no database, no cache)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession] | None,
        *,
        ttl: float,
        claim_for: float,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._sessions = sessions
        self.ttl = ttl
        self.claim_for = claim_for
        self._poll = poll_interval

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]
    ) -> ResultCache:
        return cls(sessions, ttl=settings.result_cache_ttl, claim_for=claim_time(settings))

    @classmethod
    @contextlib.asynccontextmanager
    async def opened(cls, settings: Settings) -> AsyncIterator[ResultCache]:
        """For a process without a database engine of its own (`mxprobe check`): the cache
        over DATABASE_URL, closed on exit; without DATABASE_URL, no cache (checks probe)."""
        if not settings.database_url or settings.result_cache_ttl <= 0:
            yield cls(None, ttl=0, claim_for=0)
            return
        engine = make_engine(settings.database_url, pool_size=2)
        try:
            sessions = make_sessionmaker(engine)
            if await _has_table(sessions):
                yield cls.from_settings(settings, sessions)
            else:
                yield cls(None, ttl=0, claim_for=0)
        finally:
            await engine.dispose()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self._sessions is not None

    async def check(
        self, verifier: Verifier, request: CheckRequest, *, fresh: bool = False
    ) -> CheckEmailOutput:
        """`verify`'s output, for a single check."""
        return (await self.verify(verifier, request, fresh=fresh)).output

    async def verify(
        self,
        verifier: Verifier,
        request: CheckRequest,
        *,
        fresh: bool = False,
        fresh_since: datetime | None = None,
        wait: bool = True,
        holder: str | None = None,
    ) -> Verification:
        """The cached result for `request`, or the engine's (stored when cacheable).
        `wait=False`: raise `InFlight` rather than wait for another check of the same key.
        `holder`: who asks (a bulk row), so that its own claim, left by a run of it that
        died mid-probe, is taken back rather than waited out."""
        sessions = self._sessions
        if sessions is None or not self.enabled:
            return await verifier.verify(request)
        proxy = request.proxy or verifier.config.proxy
        if proxy is not None and proxy.password is not None:
            # a slow hash of the password, once per proxy and process: off the event loop
            keyed = await asyncio.to_thread(cache_key, request, verifier.config)
        else:
            keyed = cache_key(request, verifier.config)
        if keyed is None:
            return await verifier.verify(request)
        key, email = keyed
        claimed = False
        if not fresh or fresh_since is not None:
            loop = asyncio.get_running_loop()
            give_up = loop.time() + self.claim_for
            while True:
                try:
                    async with session_scope(sessions) as session:
                        found = await result_cache.lookup_or_claim(
                            session,
                            key,
                            email=email,
                            ttl=self.ttl,
                            claim_for=self.claim_for,
                            fresh_since=fresh_since,
                            holder=holder,
                        )
                except Exception as exc:
                    if not outage.is_outage(exc):
                        raise
                    # The database is away: probe (a worker's result waits for it to return).
                    log.warning("result cache unavailable, probing %s: %s", email, exc)
                    break
                if found.cached is not None:
                    return Verification(_from_cache(found.cached, request), try_again=False)
                if found.claimed:
                    claimed = True
                    break
                if not wait:
                    raise InFlight(f"{email} is being checked by another task")
                if loop.time() >= give_up:
                    break  # its prober is slower than any probe should be: probe too
                await asyncio.sleep(self._poll)
        try:
            checked = await verifier.verify(request)
        except Exception:
            if claimed:
                await self._release(sessions, key)
            raise
        if cacheable(checked):
            try:
                async with session_scope(sessions) as session:
                    await result_cache.store(
                        session,
                        key,
                        email=email,
                        output=checked.output.to_json(),
                        verdict=checked.output.is_reachable.value,
                    )
            except Exception as exc:
                if not outage.is_outage(exc):
                    raise
                # Only the cache loses it (and the claim expires): the result stands.
                log.warning("result cache unavailable, not storing %s: %s", email, exc)
        elif claimed:
            await self._release(sessions, key)
        return dataclasses.replace(checked, output=_with_cache_debug(checked.output, hit=False))

    async def _release(self, sessions: async_sessionmaker[AsyncSession], key: str) -> None:
        try:
            async with session_scope(sessions) as session:
                await result_cache.release(session, key)
        except Exception:
            # Its claim expires by itself; the probe's own outcome matters more.
            log.warning("could not release the result cache claim %s", key[:12], exc_info=True)


async def _has_table(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Whether the database at hand holds the cache's table (it was migrated); when it cannot
    be asked or was not migrated, say so once: checks then probe without the cache."""
    try:
        async with session_scope(sessions) as session:
            found = await result_cache.table_exists(session)
    except Exception as exc:
        if not outage.is_outage(exc):
            raise
        log.warning("result cache unavailable (%s): checks probe without it", exc)
        return False
    if not found:
        log.warning("result cache off: the database has no result_cache (run `mxprobe migrate`)")
    return found


def claim_time(settings: Settings) -> float:
    """How long one probe may take, at most, before a check waiting for it probes too: a
    wait for a slot, a connection, the SMTP exchange, and an inline greylisting retry."""
    return (
        settings.slot_wait
        + 2 * settings.connect_timeout
        + 6 * settings.smtp_timeout
        + settings.check_greylist_wait
    )


def _from_cache(cached: result_cache.Cached, request: CheckRequest) -> CheckEmailOutput:
    """The stored output, as this request's: its `input` and `syntax` (the key ignores the
    domain's case), and `debug.cache` saying when it was probed."""
    output = CheckEmailOutput.model_validate(cached.output)
    return output.model_copy(
        update={
            "input": request.to_email,
            "syntax": syntax_of(request.to_email),
            "debug": output.debug.model_copy(
                update={
                    "cache": CacheDebug(
                        hit=True,
                        age_seconds=round(cached.age_seconds, 3),
                        checked_at=_rfc3339(cached.checked_at),
                    )
                }
            ),
        }
    )


def _with_cache_debug(output: CheckEmailOutput, *, hit: bool) -> CheckEmailOutput:
    return output.model_copy(
        update={"debug": output.debug.model_copy(update={"cache": CacheDebug(hit=hit)})}
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
