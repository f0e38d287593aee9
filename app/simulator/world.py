"""A simulated mail world: domains, fake MX hosts on 127.0.0.x, and a DNS server for them.

Build it (`add_mx`, `add_domain`), then `start()` it: one background thread with its own
event loop serves every MX host on ``<its ip>:<smtp_port>`` and the DNS on `nameserver`, over
UDP and TCP. Everything listens on 127.0.0.0/8 only.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import trustme

from app.simulator.behaviours import Behaviour, Mailbox
from app.simulator.dns_server import DnsServer
from app.simulator.domains import Domain, DomainKind, mailbox_book
from app.simulator.loop_thread import LoopThread
from app.simulator.names import ascii_domain, require_loopback
from app.simulator.ports import bind_dns, bind_smtp
from app.simulator.rcpt_policy import Book, Greylist
from app.simulator.recorder import Recorder
from app.simulator.smtp_server import MxServer
from app.simulator.zone import Zone

__all__ = ["DomainKind", "World"]


@dataclass(frozen=True)
class _MxHost:
    name: str
    ip: str
    behaviour: Behaviour
    recorder: Recorder
    greylist: Greylist


@dataclass
class _Running:
    thread: LoopThread
    smtp_port: int
    dns_port: int
    servers: list[MxServer]
    dns: DnsServer | None = None


class World:
    """Domains, fake MX hosts and their DNS; a context manager that starts and stops them."""

    def __init__(
        self,
        *,
        smtp_port: int | None = None,
        dns_ip: str = "127.0.0.53",
        dns_port: int | None = None,
        dns_latency: float = 0.0,
    ) -> None:
        """`dns_latency`: seconds the DNS server takes to answer any name (see `add_domain`)."""
        self._wanted_smtp_port = smtp_port
        self._dns_ip = require_loopback(dns_ip)
        self._wanted_dns_port = dns_port
        self._hosts: dict[str, _MxHost] = {}
        self._domains: dict[str, Domain] = {}
        self._dns_latency = _latency(dns_latency)
        self._domain_latency: dict[str, float] = {}
        self._ca: trustme.CA | None = None
        self._running: _Running | None = None

    # -- building ---------------------------------------------------------------------------

    def add_mx(self, host: str, *, ip: str, behaviour: Behaviour = Behaviour()) -> None:  # noqa: B008
        """Add a fake MX host listening on `ip` (in 127.0.0.0/8, one host per IP)."""
        self._require_stopped()
        name = ascii_domain(host)
        ip = require_loopback(ip)
        if name in self._hosts:
            raise ValueError(f"MX host {name} already added")
        if ip == self._dns_ip or any(h.ip == ip for h in self._hosts.values()):
            raise ValueError(f"{ip} is already used in this world")
        self._hosts[name] = _MxHost(name, ip, behaviour, Recorder(name), Greylist())

    def add_domain(
        self,
        name: str,
        *,
        kind: DomainKind = DomainKind.MX,
        mx: Sequence[tuple[int, str]] = (),
        a: str | None = None,
        mailboxes: Mapping[str, Mailbox] | Iterable[str] = (),
        ttl: int = 300,
        dns_latency: float | None = None,
        txt: Sequence[str] = (),
    ) -> None:
        """Add a domain. `mx` hosts need not exist (their A lookup is then NXDOMAIN).

        `a` is the A record of an A_ONLY domain (its implicit MX: the MX host with that IP
        serves the domain), or an extra A record of an MX domain. Names may be Unicode.
        `dns_latency`: seconds the DNS server takes to answer queries about this name (its
        MX hosts' names keep the world's); None: the world's. A domain that never answers is
        `DomainKind.TIMEOUT`. `txt`: the domain's TXT records (e.g. its SPF record), each one
        string (served split into 255-byte character-strings when longer).
        """
        self._require_stopped()
        domain = ascii_domain(name)
        if domain in self._domains:
            raise ValueError(f"domain {domain} already added")
        if kind is DomainKind.MX and not mx:
            raise ValueError(f"{domain}: an MX domain needs MX records (see DomainKind)")
        if kind is DomainKind.A_ONLY and a is None:
            raise ValueError(f"{domain}: an A_ONLY domain needs an A record")
        if ttl < 0:
            raise ValueError("ttl must be >= 0")
        latency = None if dns_latency is None else _latency(dns_latency)
        self._domains[domain] = Domain(
            name=domain,
            kind=kind,
            mx=tuple((int(pref), ascii_domain(host)) for pref, host in mx),
            a=require_loopback(a) if a is not None else None,
            mailboxes=mailbox_book(mailboxes),
            ttl=ttl,
            txt=_txt_records(txt),
        )
        if latency is not None:
            self._domain_latency[domain] = latency

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start every server in one background thread; return once all are listening."""
        self._require_stopped()
        thread = LoopThread("mxprobe-simulator")
        try:
            self._running = thread.run(self._open(thread))
        except BaseException:
            thread.close()
            raise

    def stop(self) -> None:
        """Close every server and connection, and stop the thread. Safe to call twice."""
        running, self._running = self._running, None
        if running is None:
            return
        try:
            running.thread.run(_close(running))
        finally:
            running.thread.close()

    def __enter__(self) -> World:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def _open(self, thread: LoopThread) -> _Running:
        listening = [h for h in self._hosts.values() if not h.behaviour.refuse]
        refused = [h.ip for h in self._hosts.values() if h.behaviour.refuse]
        smtp_port, sockets = bind_smtp(
            [h.ip for h in listening], port=self._wanted_smtp_port, also_free_on=refused
        )
        pending: list[socket.socket] = list(sockets.values())
        running = _Running(thread, smtp_port, 0, [])
        try:
            dns_port, udp, tcp = bind_dns(self._dns_ip, port=self._wanted_dns_port)
            pending += [udp, tcp]
            running.dns_port = dns_port
            tls = self._tls_context() if any(h.behaviour.tls for h in listening) else None
            books = self._books()
            for host in listening:
                server = MxServer(
                    host.name,
                    behaviour=host.behaviour,
                    books=books[host.name],
                    recorder=host.recorder,
                    greylist=host.greylist,
                    tls_context=tls,
                )
                running.servers.append(server)
                await server.start(sockets[host.ip])
                pending.remove(sockets[host.ip])
            running.dns = DnsServer(
                Zone(
                    self._domains,
                    {h.name: h.ip for h in self._hosts.values()},
                    latency=self._domain_latency,
                    default_latency=self._dns_latency,
                )
            )
            await running.dns.start(udp=udp, tcp=tcp)
            pending.remove(udp)
            pending.remove(tcp)
        except BaseException:
            for sock in pending:
                sock.close()
            await _close(running)
            raise
        return running

    def _books(self) -> dict[str, dict[str, Book]]:
        """For each MX host, the domains it receives mail for, with their mailboxes."""
        books: dict[str, dict[str, Book]] = {name: {} for name in self._hosts}
        by_ip = {h.ip: h.name for h in self._hosts.values()}
        for domain in self._domains.values():
            if domain.kind is DomainKind.MX:
                for _, host in domain.mx:
                    if host in books:
                        books[host][domain.name] = domain.mailboxes
            elif domain.kind is DomainKind.A_ONLY and domain.a in by_ip:
                books[by_ip[domain.a]][domain.name] = domain.mailboxes
        return books

    def _tls_context(self) -> ssl.SSLContext:
        ca = self._certificate_authority()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*self._hosts).configure_cert(context)
        return context

    def _certificate_authority(self) -> trustme.CA:
        if self._ca is None:
            self._ca = trustme.CA()
        return self._ca

    def _require_stopped(self) -> None:
        if self._running is not None:
            raise RuntimeError("the world is running; stop() it first")

    def _require_running(self) -> _Running:
        if self._running is None:
            raise RuntimeError("the world is not running; start() it first")
        return self._running

    # -- observing --------------------------------------------------------------------------

    @property
    def smtp_port(self) -> int:
        """The TCP port every MX host listens on (at its own IP)."""
        return self._require_running().smtp_port

    @property
    def nameserver(self) -> str:
        """``"127.0.0.53:PORT"``: the DNS server, UDP and TCP."""
        return f"{self._dns_ip}:{self._require_running().dns_port}"

    @property
    def dns_ip(self) -> str:
        return self._dns_ip

    @property
    def dns_port(self) -> int:
        return self._require_running().dns_port

    @property
    def ca_pem(self) -> bytes:
        """PEM of the CA that signs the MX hosts' STARTTLS certificates."""
        return bytes(self._certificate_authority().cert_pem.bytes())

    def mx_ip(self, host: str) -> str:
        """The IP of an MX host."""
        return self._hosts[ascii_domain(host)].ip

    def recorder(self, host: str) -> Recorder:
        """The recorder of an MX host (KeyError if there is no such host)."""
        return self._hosts[ascii_domain(host)].recorder

    @property
    def recorders(self) -> Mapping[str, Recorder]:
        """MX host name → its recorder."""
        return {name: host.recorder for name, host in self._hosts.items()}

    def total_data_commands(self) -> int:
        """DATA/BDAT commands received by every MX host: must stay 0."""
        return sum(host.recorder.data_commands for host in self._hosts.values())

    def reset_recorders(self) -> None:
        for host in self._hosts.values():
            host.recorder.reset()
        if self._running is not None and self._running.dns is not None:
            self._running.dns.zone.queries.clear()

    @property
    def dns_queries(self) -> Mapping[tuple[str, str], int]:
        """How often each (name, qtype) was asked, e.g. `("normal.test", "MX")`."""
        dns = self._require_running().dns
        return dict(dns.zone.queries) if dns is not None else {}

    def reset_greylists(self) -> None:
        """Forget every greylisting triplet seen so far."""
        for host in self._hosts.values():
            host.greylist.reset()


def _txt_records(records: Sequence[str]) -> tuple[str, ...]:
    if isinstance(records, str):
        raise TypeError("txt must be a sequence of records, not a string")
    return tuple(records)


def _latency(seconds: float) -> float:
    if not seconds >= 0:
        raise ValueError(f"dns_latency must be >= 0 seconds, not {seconds}")
    return float(seconds)


async def _close(running: _Running) -> None:
    for server in running.servers:
        await server.close()
    if running.dns is not None:
        await running.dns.close()
