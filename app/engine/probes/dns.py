"""MX resolution over aiodns: preference order, null MX, implicit MX, a bounded TTL cache.

Failures are translated into the engine's own errors: NXDOMAIN means "no mail" (an answer);
SERVFAIL and timeouts say nothing about the address, so they surface as errors and the verdict
becomes `unknown`, never `invalid`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiodns
import aiodns.error
from cachetools import TLRUCache

from app.engine import errors
from app.engine.config import DnsConfig

T = TypeVar("T")

_NO_ANSWER = {aiodns.error.ARES_ENODATA}
_NO_DOMAIN = {aiodns.error.ARES_ENOTFOUND, aiodns.error.ARES_ENONAME}
_TIMEOUT = {aiodns.error.ARES_ETIMEOUT}


@dataclass(frozen=True, slots=True)
class MxHost:
    preference: int
    exchange: str  # lower-case, no trailing dot


@dataclass(frozen=True, slots=True)
class MxLookup:
    """What DNS says about where mail for a domain goes."""

    hosts: tuple[MxHost, ...]  # preference order
    null_mx: bool = False  # RFC 7505 "0 ."
    implicit: bool = False  # no MX: the domain's own A/AAAA (RFC 5321 §5.1)
    exists: bool = True  # False on NXDOMAIN

    @property
    def accepts_mail(self) -> bool:
        return bool(self.hosts) and not self.null_mx

    @property
    def records(self) -> list[str]:
        """Reacher's `mx.records`: exchange names with a trailing dot."""
        return [f"{h.exchange}." for h in self.hosts]


@dataclass(frozen=True, slots=True)
class _Cached:
    value: object
    ttl: float


def split_nameserver(server: str) -> tuple[str, int]:
    """`"10.0.0.1"`, `"10.0.0.1:5353"`, `"[::1]:53"` → (host, port)."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 53


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, multicast, reserved and other non-global IPs."""
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


class Resolver:
    """An MX/A/AAAA resolver with a bounded cache that honours answer TTLs.

    Concurrent look-ups of the same name share one query.
    """

    def __init__(self, config: DnsConfig) -> None:
        self._config = config
        self._resolver: aiodns.DNSResolver | None = None
        self._cache: TLRUCache[tuple[str, str], _Cached] = TLRUCache(
            maxsize=config.cache_size, ttu=lambda _k, v, now: now + v.ttl, timer=time.monotonic
        )
        self._inflight: dict[tuple[str, str], asyncio.Future[object]] = {}

    def _channel(self) -> aiodns.DNSResolver:
        if self._resolver is None:
            servers = [
                f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
                for h, p in map(split_nameserver, self._config.nameservers)
            ]
            self._resolver = aiodns.DNSResolver(
                nameservers=servers or None, timeout=self._config.timeout, tries=self._config.tries
            )
        return self._resolver

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    def _ttl(self, seconds: float) -> float:
        return min(max(seconds, self._config.min_ttl), self._config.max_ttl)

    async def _cached(
        self, key: tuple[str, str], fetch: Callable[[], Awaitable[_Cached]]
    ) -> object:
        hit = self._cache.get(key)
        if hit is not None:
            return hit.value
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            entry = await fetch()
            if entry.ttl > 0:
                self._cache[key] = entry
            future.set_result(entry.value)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]
        return entry.value

    async def _query(self, name: str, qtype: str) -> list[tuple[int, object]] | None:
        """Answer records as (ttl, data); None when the name does not exist."""
        try:
            result = await self._channel().query_dns(name, qtype)
        except aiodns.error.DNSError as exc:
            code = exc.args[0] if exc.args else None
            if code in _NO_ANSWER:
                return []
            if code in _NO_DOMAIN:
                return None
            if code in _TIMEOUT:
                raise errors.DnsTimeout(f"DNS {qtype} query for {name} timed out") from exc
            message = exc.args[1] if len(exc.args) > 1 else str(exc)
            raise errors.DnsServerFailure(f"DNS {qtype} query for {name}: {message}") from exc
        return [(rr.ttl, rr.data) for rr in result.answer if rr.type == _QTYPES[qtype]]

    async def mx(self, domain: str) -> MxLookup:
        """The MX hosts for `domain` (its IDNA A-label form), in preference order."""
        domain = domain.rstrip(".").lower()

        async def fetch() -> _Cached:
            answers = await self._query(domain, "MX")
            if answers is None:
                return _Cached(MxLookup(hosts=(), exists=False), self._config.negative_ttl)
            if answers:
                ttl = self._ttl(min(t for t, _ in answers))
                hosts = sorted(
                    (
                        MxHost(int(getattr(d, "priority", 0)), str(getattr(d, "exchange", "")))
                        for _, d in answers
                    ),
                    key=lambda h: (h.preference, h.exchange),
                )
                if any(h.exchange.strip(".") == "" for h in hosts):
                    return _Cached(MxLookup(hosts=(), null_mx=True), ttl)
                cleaned = tuple(MxHost(h.preference, h.exchange.rstrip(".").lower()) for h in hosts)
                return _Cached(MxLookup(hosts=cleaned), ttl)
            # No MX: the domain itself is the implicit MX if it has an address (RFC 5321 §5.1).
            if await self.addresses(domain):
                return _Cached(
                    MxLookup(hosts=(MxHost(0, domain),), implicit=True), self._config.negative_ttl
                )
            return _Cached(MxLookup(hosts=()), self._config.negative_ttl)

        value = await self._cached((domain, "MX"), fetch)
        assert isinstance(value, MxLookup)
        return value

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of `host`; [] when it has none."""
        host = host.rstrip(".").lower()
        found: list[str] = []
        for qtype in ("A", "AAAA"):

            async def fetch(qtype: str = qtype) -> _Cached:
                answers = await self._query(host, qtype)
                if not answers:
                    return _Cached([], self._config.negative_ttl)
                ttl = self._ttl(min(t for t, _ in answers))
                return _Cached([str(getattr(d, "addr", "")) for _, d in answers], ttl)

            value = await self._cached((host, qtype), fetch)
            assert isinstance(value, list)
            found.extend(value)
        return found


_QTYPES = {"MX": 15, "A": 1, "AAAA": 28}
