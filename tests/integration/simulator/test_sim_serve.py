"""`python -m app.simulator`: a world in a process of its own, reporting its logs on SIGUSR1."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys


def test_a_served_world_reports_its_counters_on_sigusr1() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.simulator"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        info = json.loads(proc.stdout.readline())
        with smtplib.SMTP("127.0.0.10", info["smtp_port"], timeout=5) as client:
            client.ehlo("client.test")
            client.mail("a@client.test")
            client.rcpt("alice@normal.test")
        proc.send_signal(signal.SIGUSR1)
        stats = json.loads(proc.stdout.readline())["stats"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()

    assert stats["mx.normal.test"]["connections"] == 1
    assert stats["mx.normal.test"]["rcpt"] == 1
    assert stats["mx.normal.test"]["data"] == 0
    assert proc.returncode == 0
