"""Building, starting and stopping worlds; the bench world; `python -m app.simulator`."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from dnslib import DNSRecord

from app.simulator import Behaviour, DomainKind, Mailbox, World
from app.simulator.bench import Expected, bench_addresses, bench_world
from app.simulator.standard import STANDARD_DOMAINS

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("ip", ["10.0.0.1", "192.168.1.10", "::1", "8.8.8.8"])
def test_only_loopback_addresses_are_accepted(ip: str):
    world = World()
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        world.add_mx("mx.example.test", ip=ip)
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        world.add_domain("example.test", kind=DomainKind.A_ONLY, a=ip)
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        World(dns_ip=ip)


def test_invalid_worlds_are_refused():
    world = World()
    world.add_mx("mx.example.test", ip="127.0.0.10")
    with pytest.raises(ValueError, match="already"):
        world.add_mx("MX.example.test", ip="127.0.0.11")
    with pytest.raises(ValueError, match="already used"):
        world.add_mx("mx2.example.test", ip="127.0.0.10")
    with pytest.raises(ValueError, match="already used"):
        world.add_mx("mx3.example.test", ip="127.0.0.53")
    with pytest.raises(ValueError, match="needs MX records"):
        world.add_domain("example.test")
    with pytest.raises(ValueError, match="needs an A record"):
        world.add_domain("example.test", kind=DomainKind.A_ONLY)
    with pytest.raises(ValueError, match="latency"):
        Behaviour(latency=-1)
    with pytest.raises(RuntimeError, match="not running"):
        _ = world.smtp_port


def test_start_stop_and_restart_on_fixed_ports(make_world, query):
    world = make_world()
    world.add_mx("mx.example.test", ip="127.0.0.10", behaviour=Behaviour(starttls=False))
    world.add_domain("example.test", mx=[(10, "mx.example.test")], mailboxes={"a": Mailbox.OK})
    world.start()
    smtp_port, dns_port = world.smtp_port, world.dns_port
    with pytest.raises(RuntimeError, match="running"):
        world.start()
    with pytest.raises(RuntimeError, match="running"):
        world.add_domain("late.test", kind=DomainKind.NO_MAIL)
    world.stop()
    world.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.10", smtp_port, timeout=2)

    again = make_world(smtp_port=smtp_port, dns_port=dns_port)
    again.add_mx("mx.example.test", ip="127.0.0.10")
    again.add_domain("example.test", mx=[(10, "mx.example.test")])
    with again:
        assert (again.smtp_port, again.dns_port) == (smtp_port, dns_port)
        assert query(again, "example.test").rr
        with smtplib.SMTP("127.0.0.10", smtp_port, timeout=2) as client:
            assert client.noop()[0] == 250


def test_world_closes_open_connections_on_stop(make_world):
    world = make_world()
    world.add_mx("mx.example.test", ip="127.0.0.10")
    world.add_domain("example.test", mx=[(10, "mx.example.test")])
    world.start()
    with smtplib.SMTP("127.0.0.10", world.smtp_port, timeout=2) as client:
        client.ehlo("client.test")
        world.stop()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_standard_world_lists_its_domains(query, std: World):
    for domain in STANDARD_DOMAINS:
        if domain != "timeout.test":
            assert query(std, domain, "MX").header.rcode in (0, 2), domain
    assert sorted(std.recorders) == sorted(
        [f"mx.{d}" for d in STANDARD_DOMAINS[:12]]
        + ["mx1.backup.test", "mx2.backup.test", "mx.xn--bcher-kva.test"]
    )


def mx_of(world: World, domain: str) -> str:
    packet = DNSRecord.question(domain, "MX").send(world.dns_ip, world.dns_port, timeout=2)
    return str(DNSRecord.parse(packet).rr[0].rdata.label).rstrip(".")


def test_bench_world_agrees_with_its_address_list():
    params = {"domains": 5, "mx_hosts": 2, "mailboxes_per_domain": 10}
    addresses = bench_addresses(**params)
    assert len(addresses) == 5 * 10 + 2 * 1
    expected = [a.expected for a in addresses]
    assert expected.count(Expected.SAFE) == 45
    assert expected.count(Expected.INVALID) == 5
    assert expected.count(Expected.RISKY) == 2
    assert len({a.email for a in addresses}) == len(addresses)

    world = bench_world(latency=0.0, max_connections=1, **params)
    by_domain: dict[str, list[tuple[str, Expected]]] = defaultdict(list)
    for address in addresses:
        by_domain[address.email.rsplit("@", 1)[1]].append((address.email, address.expected))
    with world:
        for domain, wanted in by_domain.items():
            host = mx_of(world, domain)
            assert host in {a.mx_host for a in addresses if a.email.endswith("@" + domain)}
            with smtplib.SMTP(world.mx_ip(host), world.smtp_port, timeout=5) as client:
                client.ehlo("client.test")
                client.mail("probe@client.test")
                for email, outcome in wanted:
                    code = client.rcpt(email)[0]
                    assert code == (550 if outcome is Expected.INVALID else 250), email
        assert world.total_data_commands() == 0


def test_simulator_imports_no_app_code():
    code = (
        "import sys, app.simulator, app.simulator.bench, app.simulator.serve\n"
        "bad = [m for m in sys.modules if m.startswith(('app.engine', 'app.db', 'app.api',"
        " 'app.settings', 'worker'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=_env())


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_python_m_app_simulator_serves_until_sigterm():
    command = [sys.executable, "-m", "app.simulator"]
    with subprocess.Popen(
        command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = json.loads(process.stdout.readline())
            assert set(line) == {"nameserver", "smtp_port"}
            ip, port = line["nameserver"].rsplit(":", 1)
            reply = DNSRecord.parse(
                DNSRecord.question("normal.test", "MX").send(ip, int(port), timeout=2)
            )
            assert str(reply.rr[0].rdata.label) == "mx.normal.test."
            with smtplib.SMTP("127.0.0.10", line["smtp_port"], timeout=2) as client:
                assert client.noop()[0] == 250
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
