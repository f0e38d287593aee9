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
plain.test             mx (127.0.0.25)     no STARTTLS; each reply one write; alice, bob → 250;
                                           other → 550 5.1.1
flight.test            mx (127.0.0.26)     no STARTTLS; the replies to a pipelined flight in one
                                           write; alice, bob → 250; carol → 452 4.2.2 Mailbox
                                           full; dave → 450 4.2.1 receiving mail at a rate
                                           (Gmail's); other → 550 5.1.1
split.test             mx (127.0.0.27)     no STARTTLS, no PIPELINING; each reply in two writes
                                           (cut in the code, the middle, or CR|LF); alice → 250;
                                           carol → 452 4.2.2; other → 550 5.1.1
splitpipe.test         mx (127.0.0.28)     no STARTTLS, PIPELINING, replies split as split.test;
                                           alice, bob → 250; dave → 450 4.2.1; other → 550 5.1.1
splittls.test          mx (127.0.0.29)     STARTTLS, PIPELINING, replies split as split.test;
                                           alice → 250; carol → 452 4.2.2; other → 550 5.1.1
multiline.test         mx (127.0.0.30)     no STARTTLS; a 3-line banner; every RCPT reply in two
                                           lines; a flight's replies in one write; alice → 250;
                                           carol → 452 4.2.2; dave → 450 4.2.1; erin → 550
                                           5.2.1 disabled; other → 550 5.1.1
slowbanner.test        mx (127.0.0.31)     no STARTTLS; a 2-line banner trickling out in four
                                           writes `slow_banner_seconds` (0.15 s) apart; replies
                                           split; alice → 250; other → 550 5.1.1
quota.test             mx (127.0.0.32)     alice → 452 4.2.2 Mailbox full; bob → 250;
                                           other → 550 5.1.1
ratelimit.test         mx (127.0.0.33)     every RCPT reply in two lines, each reply one write;
                                           alice → 450 4.2.1 receiving mail at a rate (Gmail's);
                                           bob → 250; other → 550 5.1.1
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

`EXPECTED` lists addresses of this world with the verdict (Reacher's ``is_reachable``) a
correct verifier reaches when its timeouts are shorter than the tarpit and the DNS timeout
longer than slowdns.test's latency, and it asks a greylisted recipient again once
`greylist_seconds` have passed. Only the reply decides a verdict, never how its bytes arrive.
"""

from __future__ import annotations

from dataclasses import replace

from app.simulator.behaviours import Behaviour, Mailbox
from app.simulator.world import DomainKind, World

__all__ = ["EXPECTED", "STANDARD_DOMAINS", "standard_world"]

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
    "plain.test",
    "flight.test",
    "split.test",
    "splitpipe.test",
    "splittls.test",
    "multiline.test",
    "slowbanner.test",
    "quota.test",
    "ratelimit.test",
    "aonly.test",
    "slowdns.test",
    "nullmx.test",
    "nomail.test",
    "servfail.test",
    "timeout.test",
)
"""Every domain of the standard world (IDN in punycode)."""

_GHOSTS = tuple(f"ghost{n}" for n in range(1, 9))
"""Local parts no domain of the world knows."""


def _verdicts(domain: str, known: dict[str, str], *, others: str, ghosts: int) -> dict[str, str]:
    """`known` local parts with their verdicts, then `ghosts` unknown ones, verdict `others`."""
    table = {f"{local}@{domain}": verdict for local, verdict in known.items()}
    table.update({f"{local}@{domain}": others for local in _GHOSTS[:ghosts]})
    return table


EXPECTED: dict[str, str] = {
    **_verdicts(
        "normal.test",
        {"alice": "safe", "bob": "safe", "nobody": "invalid"},
        others="invalid",
        ghosts=8,
    ),
    **_verdicts("catchall.test", {"alice": "risky", "anyone": "risky"}, others="risky", ghosts=4),
    **_verdicts("greylist.test", {"alice": "safe"}, others="invalid", ghosts=2),
    **_verdicts("full.test", {"alice": "risky", "bob": "safe"}, others="invalid", ghosts=1),
    **_verdicts("disabled.test", {"alice": "invalid"}, others="invalid", ghosts=1),
    **_verdicts("blocked.test", {"alice": "unknown"}, others="unknown", ghosts=1),
    **_verdicts("tarpit.test", {"alice": "unknown"}, others="unknown", ghosts=1),
    **_verdicts("refused.test", {"alice": "unknown"}, others="unknown", ghosts=1),
    **_verdicts("tls.test", {"alice": "safe"}, others="invalid", ghosts=2),
    **_verdicts("busy.test", {"alice": "safe"}, others="invalid", ghosts=2),
    **_verdicts("strict.test", {"alice": "safe"}, others="invalid", ghosts=4),
    **_verdicts("slow.test", {"alice": "safe"}, others="invalid", ghosts=1),
    **_verdicts("backup.test", {"alice": "safe"}, others="invalid", ghosts=1),
    "alice@bücher.test": "safe",
    **_verdicts("xn--bcher-kva.test", {"alice": "safe"}, others="invalid", ghosts=1),
    **_verdicts("plain.test", {"alice": "safe", "bob": "safe"}, others="invalid", ghosts=6),
    **_verdicts(
        "flight.test",
        {"alice": "safe", "bob": "safe", "carol": "risky", "dave": "safe"},
        others="invalid",
        ghosts=6,
    ),
    **_verdicts("split.test", {"alice": "safe", "carol": "risky"}, others="invalid", ghosts=3),
    **_verdicts(
        "splitpipe.test",
        {"alice": "safe", "bob": "safe", "dave": "safe"},
        others="invalid",
        ghosts=4,
    ),
    **_verdicts("splittls.test", {"alice": "safe", "carol": "risky"}, others="invalid", ghosts=2),
    **_verdicts(
        "multiline.test",
        {"alice": "safe", "carol": "risky", "dave": "safe", "erin": "invalid"},
        others="invalid",
        ghosts=3,
    ),
    **_verdicts("slowbanner.test", {"alice": "safe"}, others="invalid", ghosts=1),
    **_verdicts("quota.test", {"alice": "risky", "bob": "safe"}, others="invalid", ghosts=1),
    **_verdicts("ratelimit.test", {"alice": "safe", "bob": "safe"}, others="invalid", ghosts=1),
    **_verdicts("aonly.test", {"alice": "safe"}, others="invalid", ghosts=1),
    **_verdicts("slowdns.test", {"alice": "safe"}, others="invalid", ghosts=1),
    "x@nullmx.test": "invalid",
    "x@nomail.test": "invalid",
    "x@servfail.test": "unknown",
    "x@timeout.test": "unknown",
    "x@nxdomain.test": "invalid",
}
"""Address → the verdict a correct verifier reaches (see the module docstring): every kind of
mailbox of every domain, and unknown recipients ("ghostN") wherever a server can say so."""


def standard_world(
    *,
    latency: float = 0.0,
    greylist_seconds: float = 1.0,
    tarpit_seconds: float = 30.0,
    slow_dns_seconds: float = 0.8,
    slow_banner_seconds: float = 0.15,
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

    # How replies reach the client, on plain TCP (no STARTTLS) and after it; 4xx mailboxes.
    quota, rate = Mailbox.OVER_QUOTA, Mailbox.RATE_LIMITED
    plain = Behaviour(latency=latency, starttls=False)
    single("plain.test", replace(plain, segments="per_reply"), {"alice": ok, "bob": ok})
    single(
        "flight.test",
        replace(plain, segments="per_flight"),
        {"alice": ok, "bob": ok, "carol": quota, "dave": rate},
    )
    single(
        "split.test",
        replace(plain, segments="split", pipelining=False),
        {"alice": ok, "carol": quota},
    )
    single(
        "splitpipe.test", replace(plain, segments="split"), {"alice": ok, "bob": ok, "dave": rate}
    )
    single(
        "splittls.test", Behaviour(latency=latency, segments="split"), {"alice": ok, "carol": quota}
    )
    single(
        "multiline.test",
        replace(plain, segments="per_flight", multiline_rcpt=True, banner_lines=3),
        {"alice": ok, "carol": quota, "dave": rate, "erin": Mailbox.DISABLED},
    )
    single(
        "slowbanner.test",
        replace(plain, segments="split", banner_lines=2, slow_banner=slow_banner_seconds),
        {"alice": ok},
    )
    single("quota.test", Behaviour(latency=latency), {"alice": quota, "bob": ok})
    single(
        "ratelimit.test",
        Behaviour(latency=latency, segments="per_reply", multiline_rcpt=True),
        {"alice": rate, "bob": ok},
    )

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
