"""`mxprobe check` aimed at one MX host, with its SMTP transcript, and reading addresses from a
file or stdin: as a person runs it, a subprocess against the simulated world."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from app.simulator import World
from tests.conftest import world_env


def mxprobe(
    world: World, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MXPROBE_")}
    environment.update(world_env(world))
    environment.update(env)
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


TIMED = re.compile(r"^\s*\d+\.\d ms  #(\d+)  (C:|S:|--) (.*)$")


def test_a_probe_aimed_at_one_mx_prints_its_transcript(world: World) -> None:
    # normal.test's server, named by IP: no DNS is asked for the domain.
    ip = world.mx_ip("mx.normal.test")
    done = mxprobe(
        world,
        "check",
        "nobody@normal.test",
        "--mx-host",
        ip,
        "--port",
        str(world.smtp_port),
        "--transcript",
        MXPROBE_SMTP_PORTS="1",  # --port wins over the setting
    )

    assert done.returncode == 0, done.stderr
    first, *transcript = done.stdout.splitlines()
    assert first.split()[:2] == ["invalid", "nobody@normal.test"]
    lines = [m.groups() for m in map(TIMED.match, transcript) if m]
    assert len(lines) == len(transcript), transcript
    said = [text for _, who, text in lines if who == "C:"]
    assert said[0] == "EHLO probe.mxprobe.test"
    assert "MAIL FROM:<verify@mxprobe.test>" in said
    assert "RCPT TO:<nobody@normal.test>" in said
    assert said[-1] == "QUIT"
    assert not [s for s in said if s.split()[0] in ("DATA", "BDAT")]
    heard = [text for _, who, text in lines if who == "S:"]
    assert heard[0].startswith("220")
    assert any(text.startswith("550") for text in heard)
    assert lines[0][2] == f"connecting to {ip} [{ip}]:{world.smtp_port}"
    assert not [query for query in world.dns_queries if query[0] == "normal.test"]


def test_the_named_host_must_be_allowed(world: World) -> None:
    ip = world.mx_ip("mx.normal.test")
    done = mxprobe(
        world,
        "check",
        "--json",
        "alice@normal.test",
        "--mx-host",
        ip,
        MXPROBE_ALLOW_PRIVATE_MX="false",
    )

    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["is_reachable"] == "unknown"
    assert "MXPROBE_ALLOW_PRIVATE_MX" in output["smtp"]["error"]["message"]
    assert world.recorder("mx.normal.test").connections == 0


def test_addresses_from_stdin_and_a_file(world: World, tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("name,email\nBob,bob@normal.test\nNobody,nobody@normal.test\n")

    done = mxprobe(world, "check", "-", "--file", str(listed), stdin="alice@normal.test\n\n")

    assert done.returncode == 0, done.stderr
    verdicts = [line.split()[:2] for line in done.stdout.splitlines()]
    assert verdicts == [
        ["safe", "alice@normal.test"],
        ["safe", "bob@normal.test"],
        ["invalid", "nobody@normal.test"],
    ]


def test_no_addresses_is_a_usage_error(world: World) -> None:
    nothing = mxprobe(world, "check")
    empty = mxprobe(world, "check", "-", stdin="")

    assert nothing.returncode == empty.returncode == 2
    assert "no addresses" in nothing.stderr
    assert "stdin: the list is empty" in empty.stderr
