"""The standard simulated world: one domain per behaviour, for tests and `mxprobe sim`.

Every MX host is named ``mx.<domain>`` (backup.test has ``mx1.``/``mx2.``) and listens on
its own 127.0.0.x address, all on the world's one SMTP port. "other" means any local part not
listed. Replies are to ``RCPT TO``; `latency` is added to every server.

=====================  ==================  =====================================================
domain                 MX host (IP)        what a verifier sees
=====================  ==================  =====================================================
normal.test            mx (127.0.0.10)     alice, bob → 250; other → 550 5.1.1 User unknown
catchall.test          mx (127.0.0.11)     every local part → 250 (catch-all)
greylist.test          mx (127.0.0.12)     first try of each (client ip, MAIL FROM, RCPT) →
                                           451 4.7.1 Greylisted; retried after
                                           `greylist_seconds`: alice → 250, other → 550 5.1.1
full.test              mx (127.0.0.13)     alice → 552 5.2.2 Mailbox full; bob → 250;
                                           other → 550 5.1.1
disabled.test          mx (127.0.0.14)     alice → 550 5.2.1 Mailbox disabled; other → 550 5.1.1
blocked.test           mx (127.0.0.15)     every RCPT → 554 5.7.1 client host blocked (spamhaus)
tarpit.test            mx (127.0.0.16)     banner only after `tarpit_seconds` (30 s): time out;
                                           a patient client: alice → 250, other → 550 5.1.1
refused.test           mx (127.0.0.17)     connection refused (nothing listens)
tls.test               mx (127.0.0.18)     MAIL/RCPT before STARTTLS → 530 5.7.0; after it:
                                           alice → 250, other → 550 5.1.1
busy.test              mx (127.0.0.19)     max 1 connection: a 2nd simultaneous one gets the
                                           banner 421 4.7.0 Too many connections; alice → 250
strict.test            mx (127.0.0.20)     alice → 250; the 1st and 2nd unknown RCPT of a session
                                           → 550 5.1.1, the 3rd → 421 4.7.0 and the server hangs up
slow.test              mx (127.0.0.21)     0.05 s more before every reply; alice → 250
backup.test            mx1 (127.0.0.22)    MX 10 → mx1: connection refused;
                       mx2 (127.0.0.23)    MX 20 → mx2: alice → 250, other → 550 5.1.1
xn--bcher-kva.test     mx (127.0.0.24)     bücher.test (IDN): alice → 250, other → 550 5.1.1
aonly.test             (none)              no MX, A 127.0.0.10 (implicit MX: normal.test's
                                           server): alice → 250, other → 550 5.1.1
slowdns.test           mx.normal.test      its DNS answers after `slow_dns_seconds` (0.8 s);
                                           normal.test's server: alice → 250, other → 550 5.1.1
nullmx.test            (none)              null MX ``0 .``: accepts no mail
nomail.test            (none)              exists, no MX and no A/AAAA: no mail server
servfail.test          (none)              every query → SERVFAIL
timeout.test           (none)              queries are never answered
(any other name)       (none)              NXDOMAIN
=====================  ==================  =====================================================

The DNS server is on 127.0.0.53; every domain's records have a TTL of 300 s.
"""

from __future__ import annotations

from app.simulator.behaviours import Behaviour, Mailbox
from app.simulator.world import DomainKind, World

__all__ = ["STANDARD_DOMAINS", "standard_world"]

STANDARD_DOMAINS = (
    "normal.test",
    "catchall.test",
    "greylist.test",
    "full.test",
    "disabled.test",
    "blocked.test",
    "tarpit.test",
    "refused.test",
    "tls.test",
    "busy.test",
    "strict.test",
    "slow.test",
    "backup.test",
    "xn--bcher-kva.test",
    "aonly.test",
    "slowdns.test",
    "nullmx.test",
    "nomail.test",
    "servfail.test",
    "timeout.test",
)
"""Every domain of the standard world (IDN in punycode)."""


def standard_world(
    *,
    latency: float = 0.0,
    greylist_seconds: float = 1.0,
    tarpit_seconds: float = 30.0,
    slow_dns_seconds: float = 0.8,
    smtp_port: int | None = None,
    dns_port: int | None = None,
) -> World:
    """Build (not start) the standard world described in this module's docstring."""
    world = World(smtp_port=smtp_port, dns_port=dns_port)
    ips = (f"127.0.0.{n}" for n in range(10, 60))

    def single(domain: str, behaviour: Behaviour, mailboxes: dict[str, Mailbox]) -> None:
        host = f"mx.{domain}"
        world.add_mx(host, ip=next(ips), behaviour=behaviour)
        world.add_domain(domain, mx=[(10, host)], mailboxes=mailboxes)

    ok = Mailbox.OK
    single("normal.test", Behaviour(latency=latency), {"alice": ok, "bob": ok})
    single("catchall.test", Behaviour(latency=latency, catch_all=True), {"alice": ok})
    single(
        "greylist.test",
        Behaviour(latency=latency, greylist_seconds=greylist_seconds),
        {"alice": ok},
    )
    single("full.test", Behaviour(latency=latency), {"alice": Mailbox.FULL, "bob": ok})
    single("disabled.test", Behaviour(latency=latency), {"alice": Mailbox.DISABLED})
    single("blocked.test", Behaviour(latency=latency, ip_blocked=True), {"alice": ok})
    single("tarpit.test", Behaviour(latency=latency, tarpit_seconds=tarpit_seconds), {"alice": ok})
    single("refused.test", Behaviour(refuse=True), {"alice": ok})
    single("tls.test", Behaviour(latency=latency, require_starttls=True), {"alice": ok})
    single("busy.test", Behaviour(latency=latency, max_connections=1), {"alice": ok})
    single("strict.test", Behaviour(latency=latency, max_invalid_rcpts=2), {"alice": ok})
    single("slow.test", Behaviour(latency=latency + 0.05), {"alice": ok})

    world.add_mx("mx1.backup.test", ip=next(ips), behaviour=Behaviour(refuse=True))
    world.add_mx("mx2.backup.test", ip=next(ips), behaviour=Behaviour(latency=latency))
    world.add_domain(
        "backup.test", mx=[(20, "mx2.backup.test"), (10, "mx1.backup.test")], mailboxes=["alice"]
    )
    single("xn--bcher-kva.test", Behaviour(latency=latency), {"alice": ok})

    world.add_domain(
        "aonly.test", kind=DomainKind.A_ONLY, a=world.mx_ip("mx.normal.test"), mailboxes=["alice"]
    )
    world.add_domain(
        "slowdns.test",
        mx=[(10, "mx.normal.test")],
        mailboxes=["alice"],
        dns_latency=slow_dns_seconds,
    )
    world.add_domain("nullmx.test", kind=DomainKind.NULL_MX)
    world.add_domain("nomail.test", kind=DomainKind.NO_MAIL)
    world.add_domain("servfail.test", kind=DomainKind.SERVFAIL)
    world.add_domain("timeout.test", kind=DomainKind.TIMEOUT)
    return world
