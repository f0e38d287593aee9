"""MX resolution over dnspython: preference order, null MX, implicit MX, a bounded TTL cache.

Every try of a query gives each nameserver `DnsConfig.timeout` seconds to answer, however fast
its recent answers were, and a query is sent again (`DnsConfig.tries` in all) only after that.
(c-ares, under aiodns, sizes each try from the server's recent latency instead: five times its
average, at least 250 ms. A resolver that answers cached names in a millisecond then times out
the uncached ones it is still recursing for, and pycares offers no option to stop it.)

Failures are translated into the engine's own errors: NXDOMAIN means "no mail" (an answer);
SERVFAIL and timeouts say nothing about the address, so they surface as errors and the verdict
becomes `unknown`, never `invalid`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdata
import dns.resolver
from cachetools import TLRUCache
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from app.engine import errors
from app.engine.config import DnsConfig
from app.engine.observer import NO_OBSERVER, Observer


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
    explicit: bool = False  # hosts a request named, not DNS's (they may be IP literals)

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


@dataclass(frozen=True, slots=True)
class _Records:
    """What a name has of one record type: its records (none: NODATA), or NXDOMAIN."""

    ttl: float
    records: tuple[dns.rdata.Rdata, ...] = ()
    exists: bool = True


def split_nameserver(server: str) -> tuple[str, int]:
    """`"10.0.0.1"`, `"10.0.0.1:5353"`, `"[::1]:53"` → (host, port)."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 53


def stub_resolver(config: DnsConfig) -> dns.asyncresolver.Resolver:
    """A dnspython resolver for one try of a query: each nameserver, in order, gets
    `config.timeout` seconds. Nameservers from `config`, else from /etc/resolv.conf."""
    stub = dns.asyncresolver.Resolver(configure=not config.nameservers)
    if config.nameservers:
        stub.nameservers = [
            dns.nameserver.Do53Nameserver(*split_nameserver(server))
            for server in config.nameservers
        ]
    stub.timeout = config.timeout
    stub.lifetime = config.timeout * len(stub.nameservers)
    stub.cache = None  # the Resolver's own cache keeps answers (within bounds on their TTLs)
    return stub


def mx_hosts(records: Iterable[dns.rdata.Rdata]) -> list[MxHost]:
    """MX records in preference order; the null MX's exchange is ".", the others have no
    trailing dot and are lower-case."""
    hosts = (
        MxHost(record.preference, record.exchange.to_text(omit_final_dot=True).lower())
        for record in records
        if isinstance(record, MX)
    )
    return sorted(hosts, key=lambda h: (h.preference, h.exchange))


def texts_of(records: Iterable[dns.rdata.Rdata]) -> list[str]:
    """The text of each TXT record: its character-strings joined with nothing between (RFC
    7208 §3.3), decoded as UTF-8 with undecodable bytes replaced."""
    return [
        b"".join(record.strings).decode("utf-8", errors="replace")
        for record in records
        if isinstance(record, TXT)
    ]


def addresses_of(records: Iterable[dns.rdata.Rdata]) -> list[str]:
    """The addresses in A and AAAA records."""
    return [str(record.address) for record in records if isinstance(record, A | AAAA)]


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: an IPv4 address in the last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local use, not global
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated by RFC 4291, with :: and ::1


def is_public_address(address: str) -> bool:
    """True for global unicast only: False for private, loopback, link-local, multicast,
    reserved and other non-global IPs (`is_global` alone lets multicast through). An IPv6
    address that carries an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`,
    6to4 `2002::/16`) is judged by that IPv4 address: `::ffff:100.64.0.1` is CGNAT, whatever
    `is_global` says of the IPv6 form."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _is_global_unicast(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return _is_global_unicast(ip.sixtofour)
        if ip in _NAT64:
            return _is_global_unicast(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
        if ip in _NAT64_LOCAL or ip in _IPV4_COMPATIBLE or ip.is_site_local:
            return False
    return _is_global_unicast(ip)


def _is_global_unicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


class Resolver:
    """An MX/A/AAAA resolver with a bounded cache that honours answer TTLs.

    Concurrent look-ups of the same name share one query.
    """

    def __init__(self, config: DnsConfig, *, observer: Observer = NO_OBSERVER) -> None:
        """`observer`: told of each look-up, and whether the cache answered it."""
        self._config = config
        self._observer = observer
        self._stub: dns.asyncresolver.Resolver | None = None
        self._cache: TLRUCache[tuple[str, str], _Cached] = TLRUCache(
            maxsize=config.cache_size, ttu=lambda _k, v, now: now + v.ttl, timer=time.monotonic
        )
        self._inflight: dict[tuple[str, str], asyncio.Future[object]] = {}

    def _resolver(self) -> dns.asyncresolver.Resolver:
        if self._stub is None:
            self._stub = stub_resolver(self._config)
        return self._stub

    async def close(self) -> None:
        """Forget the nameserver configuration (dnspython holds no socket between queries)."""
        self._stub = None

    def _ttl(self, seconds: float) -> float:
        return min(max(seconds, self._config.min_ttl), self._config.max_ttl)

    async def _cached(
        self, key: tuple[str, str], fetch: Callable[[], Awaitable[_Cached]]
    ) -> object:
        hit = self._cache.get(key)
        if hit is not None:
            self._observer.dns_lookup(cached=True)
            return hit.value
        pending = self._inflight.get(key)
        if pending is not None:
            self._observer.dns_lookup(cached=True)
            return await asyncio.shield(pending)
        self._observer.dns_lookup(cached=False)
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

    async def _resolve(self, name: str, qtype: str) -> dns.resolver.Answer:
        """The answer to one question, asked up to `tries` times: again only after a try
        that timed out (a NXDOMAIN, an answer or a SERVFAIL ends it)."""
        stub = self._resolver()
        for _ in range(self._config.tries - 1):
            with contextlib.suppress(dns.resolver.LifetimeTimeout):  # then try again
                return await stub.resolve(f"{name}.", qtype, raise_on_no_answer=False)
        return await stub.resolve(f"{name}.", qtype, raise_on_no_answer=False)

    async def _query(self, name: str, qtype: str) -> _Records:
        """The records of `qtype` that `name` has."""
        try:
            answer = await self._resolve(name, qtype)
        except dns.resolver.NXDOMAIN:
            return _Records(self._config.negative_ttl, exists=False)
        except dns.exception.Timeout as exc:
            raise errors.DnsTimeout(f"DNS {qtype} query for {name} timed out") from exc
        except dns.exception.DNSException as exc:
            raise errors.DnsServerFailure(f"DNS {qtype} query for {name}: {exc}") from exc
        if answer.rrset is None:
            return _Records(self._config.negative_ttl)
        return _Records(answer.rrset.ttl, tuple(answer.rrset))

    async def mx(self, domain: str) -> MxLookup:
        """The MX hosts for `domain` (its IDNA A-label form), in preference order."""
        domain = domain.rstrip(".").lower()

        async def fetch() -> _Cached:
            found = await self._query(domain, "MX")
            if not found.exists:
                return _Cached(MxLookup(hosts=(), exists=False), self._config.negative_ttl)
            hosts = mx_hosts(found.records)
            if hosts:
                ttl = self._ttl(found.ttl)
                if any(h.exchange == "." for h in hosts):
                    return _Cached(MxLookup(hosts=(), null_mx=True), ttl)
                return _Cached(MxLookup(hosts=tuple(hosts)), ttl)
            # No MX: the domain itself is the implicit MX if it has an address (RFC 5321 §5.1).
            if await self.addresses(domain):
                return _Cached(
                    MxLookup(hosts=(MxHost(0, domain),), implicit=True), self._config.negative_ttl
                )
            return _Cached(MxLookup(hosts=()), self._config.negative_ttl)

        value = await self._cached((domain, "MX"), fetch)
        assert isinstance(value, MxLookup)
        return value

    async def txt(self, name: str) -> tuple[str, ...]:
        """The TXT records of `name` (none on NXDOMAIN or NODATA); `DnsError` on a failure."""
        name = name.rstrip(".").lower()

        async def fetch() -> _Cached:
            found = await self._query(name, "TXT")
            texts = tuple(texts_of(found.records))
            return _Cached(texts, self._ttl(found.ttl) if texts else self._config.negative_ttl)

        value = await self._cached((name, "TXT"), fetch)
        assert isinstance(value, tuple)
        return value

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of `host`; [] when it has none."""
        host = host.rstrip(".").lower()
        found: list[str] = []
        for qtype in ("A", "AAAA"):

            async def fetch(qtype: str = qtype) -> _Cached:
                records = await self._query(host, qtype)
                addresses = addresses_of(records.records)
                if not addresses:
                    return _Cached([], self._config.negative_ttl)
                return _Cached(addresses, self._ttl(records.ttl))

            value = await self._cached((host, qtype), fetch)
            assert isinstance(value, list)
            found.extend(value)
        return found
