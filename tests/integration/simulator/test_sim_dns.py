"""The simulated DNS server, asked with dnslib's client over UDP and TCP."""

from __future__ import annotations

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from app.simulator import DomainKind, World


def answers(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_mx_records_of_the_standard_world(query, std: World, tcp: bool):
    reply = query(std, "normal.test", "MX", tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.header.aa == 1
    assert answers(reply) == ["10 mx.normal.test."]
    assert reply.rr[0].ttl == 300


def test_mx_records_come_worst_preference_first(query, std: World):
    assert answers(query(std, "backup.test", "MX")) == [
        "20 mx2.backup.test.",
        "10 mx1.backup.test.",
    ]


@pytest.mark.parametrize(
    ("host", "ip"),
    [("mx.normal.test", "127.0.0.10"), ("mx1.backup.test", "127.0.0.22"), ("aonly.test", None)],
)
def test_a_records_of_mx_hosts_and_a_only_domains(query, std: World, host: str, ip: str | None):
    assert answers(query(std, host, "A")) == [ip or std.mx_ip("mx.normal.test")]


@pytest.mark.parametrize(
    ("name", "qtype"),
    [
        ("aonly.test", "MX"),
        ("nomail.test", "MX"),
        ("nomail.test", "A"),
        ("normal.test", "A"),
        ("mx.normal.test", "AAAA"),
        ("normal.test", "AAAA"),
        ("nullmx.test", "A"),
    ],
)
def test_nodata_answers(query, std: World, name: str, qtype: str):
    reply = query(std, name, qtype)
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []
    assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"]


def test_null_mx(query, std: World):
    reply = query(std, "nullmx.test", "MX")
    assert answers(reply) == ["0 ."]
    assert reply.rr[0].rdata.preference == 0


@pytest.mark.parametrize("name", ["nowhere.test", "mx.nowhere.test", "sub.normal.test"])
def test_unknown_names_are_nxdomain(query, std: World, name: str):
    reply = query(std, name, "MX")
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert reply.rr == []


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_servfail(query, std: World, tcp: bool):
    assert query(std, "servfail.test", "MX", tcp=tcp).header.rcode == RCODE.SERVFAIL


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_timeout_domain_never_answers(query, std: World, tcp: bool):
    with pytest.raises(TimeoutError):
        query(std, "timeout.test", "MX", tcp=tcp, timeout=0.2)
    assert answers(query(std, "normal.test", "MX")) == ["10 mx.normal.test."]  # still serving


def test_idn_domain_is_served_in_punycode(query, std: World):
    assert answers(query(std, "bücher.test", "MX")) == ["10 mx.xn--bcher-kva.test."]
    mixed_case = query(std, "XN--BCHER-KVA.Test", "MX")
    assert answers(mixed_case) == ["10 mx.xn--bcher-kva.test."]
    assert str(mixed_case.rr[0].rname) == "XN--BCHER-KVA.Test."  # owner name echoed as asked


def test_domain_ttl_is_honoured(make_world, query):
    world = make_world()
    world.add_mx("mx.ttl.test", ip="127.0.0.10")
    world.add_domain("ttl.test", mx=[(5, "mx.ttl.test")], ttl=42)
    world.add_domain("gone.test", kind=DomainKind.NXDOMAIN, ttl=7)
    world.add_domain("quiet.test", kind=DomainKind.NO_MAIL, ttl=9)
    world.add_domain("implicit.test", kind=DomainKind.A_ONLY, a="127.0.0.10", ttl=11)
    world.start()
    assert query(world, "ttl.test", "MX").rr[0].ttl == 42
    assert query(world, "implicit.test", "A").rr[0].ttl == 11
    assert query(world, "gone.test", "MX").auth[0].rdata.times[-1] == 7
    assert query(world, "quiet.test", "MX").auth[0].ttl == 9


def test_dns_listens_where_it_says(std: World):
    ip, port = std.nameserver.rsplit(":", 1)
    assert (ip, int(port)) == ("127.0.0.53", std.dns_port)


def test_large_udp_answers_are_truncated_and_whole_over_tcp(make_world, query):
    world = make_world()
    hosts = [(n, f"mx{n:02d}.a-rather-long-name-for-an-mx-host.example.test") for n in range(30)]
    world.add_domain("many.test", mx=hosts)
    world.start()
    truncated = query(world, "many.test", "MX")
    assert truncated.header.tc == 1
    assert truncated.rr == []
    assert len(query(world, "many.test", "MX", tcp=True).rr) == 30
    edns = DNSRecord.question("many.test", "MX")
    edns.add_ar(EDNS0(udp_len=4096))
    reply = DNSRecord.parse(edns.send(world.dns_ip, world.dns_port, timeout=2))
    assert reply.header.tc == 0
    assert len(reply.rr) == 30
