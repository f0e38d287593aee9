"""The authoritative answers of the simulated DNS: a pure function of the world's domains."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from dnslib import (
    EDNS0,
    MX,
    QTYPE,
    RCODE,
    RR,
    SOA,
    TXT,
    A,
    DNSError,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)

from app.simulator.domains import Domain, DomainKind
from app.simulator.names import ascii_domain

__all__ = ["HOST_TTL", "Reply", "Zone"]

HOST_TTL = 300
"""TTL of the A records of MX host names."""
UDP_LIMIT = 512
EDNS_PAYLOAD = 1232


@dataclass(frozen=True, slots=True)
class Reply:
    """A packed reply, and how long the server holds it back before sending it."""

    packed: bytes
    delay: float = 0.0


class Zone:
    """Answers queries about `domains` and the A records of MX `hosts` (host name → IP).

    Unknown names are NXDOMAIN. MX records are listed worst preference first, so that a
    client which does not sort them by preference is caught. Every reply about a name is held
    back by that name's `latency` (seconds), else by `default_latency`.
    """

    def __init__(
        self,
        domains: Mapping[str, Domain],
        hosts: Mapping[str, str],
        *,
        latency: Mapping[str, float] | None = None,
        default_latency: float = 0.0,
    ) -> None:
        self.domains = dict(domains)
        self.hosts = dict(hosts)
        self.latency = dict(latency or {})
        self.default_latency = default_latency
        self.queries: Counter[tuple[str, str]] = Counter()  # (name, qtype) → times asked

    def respond(self, data: bytes, *, udp: bool) -> Reply | None:
        """The reply to a packed query, or None for no reply at all."""
        try:
            request = DNSRecord.parse(data)
        except DNSError:
            return None
        if request.header.qr:
            return None
        question = request.q
        self.queries[(str(question.qname).rstrip(".").lower(), QTYPE[question.qtype])] += 1
        reply = self.answer(request)
        if reply is None:
            return None
        delay = self.latency.get(_name_of(question), self.default_latency)
        return Reply(_pack(request, reply, udp=udp), delay)

    def answer(self, request: DNSRecord) -> DNSRecord | None:
        """The reply to a parsed query, or None when the query must go unanswered."""
        reply = request.reply()
        if len(request.questions) != 1:
            reply.header.rcode = RCODE.FORMERR
            return reply
        question = request.q
        name = _name_of(question)
        qtype = question.qtype
        domain = self.domains.get(name)
        host_ip = self.hosts.get(name)
        if domain is not None:
            if domain.kind is DomainKind.TIMEOUT:
                return None
            if domain.kind is DomainKind.SERVFAIL:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            if domain.kind is DomainKind.NXDOMAIN and host_ip is None:
                return _negative(reply, name, RCODE.NXDOMAIN, domain.ttl)
        if domain is None and host_ip is None:
            return _negative(reply, name, RCODE.NXDOMAIN, HOST_TTL)
        owner = question.qname  # as asked: a client may randomise its case (DNS 0x20)
        answers = _domain_records(domain, owner, qtype) if domain is not None else []
        if host_ip is not None and qtype in (QTYPE.A, QTYPE.ANY):
            answers.append(RR(owner, QTYPE.A, rdata=A(host_ip), ttl=HOST_TTL))
        if not answers:
            return _negative(reply, name, RCODE.NOERROR, domain.ttl if domain else HOST_TTL)
        for record in answers:
            reply.add_answer(record)
        return reply


def _pack(request: DNSRecord, reply: DNSRecord, *, udp: bool) -> bytes:
    """`reply` packed, with EDNS if the query had it, truncated if too big for UDP."""
    edns = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
    if edns:
        reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD))
    packed: bytes = reply.pack()
    limit = max(UDP_LIMIT, min(int(edns[0].rclass), EDNS_PAYLOAD)) if edns else UDP_LIMIT
    if udp and len(packed) > limit:
        packed = reply.truncate().pack()
    return packed


def _name_of(question: DNSQuestion) -> str:
    """The asked name as the zone keys it: ASCII, lower-case, no trailing dot."""
    try:
        return ascii_domain(str(question.qname))
    except UnicodeError:
        return str(question.qname).lower().rstrip(".")


def _domain_records(domain: Domain, name: DNSLabel, qtype: int) -> list[RR]:
    records: list[RR] = []
    ttl = domain.ttl
    if qtype in (QTYPE.MX, QTYPE.ANY):
        if domain.kind is DomainKind.MX:
            for preference, host in sorted(domain.mx, reverse=True):
                records.append(RR(name, QTYPE.MX, rdata=MX(host, preference), ttl=ttl))
        elif domain.kind is DomainKind.NULL_MX:
            records.append(RR(name, QTYPE.MX, rdata=MX(".", 0), ttl=ttl))
    if qtype in (QTYPE.A, QTYPE.ANY) and domain.a is not None:
        if domain.kind in (DomainKind.MX, DomainKind.A_ONLY):
            records.append(RR(name, QTYPE.A, rdata=A(domain.a), ttl=ttl))
    if qtype in (QTYPE.TXT, QTYPE.ANY) and domain.kind in _HAS_TXT:
        for text in domain.txt:
            records.append(RR(name, QTYPE.TXT, rdata=TXT(_character_strings(text)), ttl=ttl))
    return records


_HAS_TXT = frozenset({DomainKind.MX, DomainKind.A_ONLY, DomainKind.NULL_MX, DomainKind.NO_MAIL})
_CHARACTER_STRING = 255


def _character_strings(text: str) -> list[bytes]:
    """One TXT record's text as DNS character-strings of at most 255 bytes each (RFC 1035
    §3.3.14); a client joins them back without anything between (RFC 7208 §3.3)."""
    data = text.encode()
    return [data[i : i + _CHARACTER_STRING] for i in range(0, len(data), _CHARACTER_STRING)] or [
        b""
    ]


def _negative(reply: DNSRecord, name: str, rcode: int, ttl: int) -> DNSRecord:
    """NXDOMAIN or NODATA, with an SOA whose minimum is the negative-caching TTL."""
    reply.header.rcode = rcode
    zone = name if rcode == RCODE.NOERROR else (name.rsplit(".", 1)[-1] or ".")
    soa = SOA("ns.simulator.test", "hostmaster.simulator.test", (1, 3600, 600, 86400, ttl))
    reply.add_auth(RR(zone, QTYPE.SOA, rdata=soa, ttl=ttl))
    return reply
