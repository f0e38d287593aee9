"""`--local`: the commands' own service, `mxprobe serve` itself run in the background.

Nothing of serve is copied: the command starts `mxprobe serve` (embedded PostgreSQL unless
DATABASE_URL, migrations, the API, the workers) on a free loopback port, in a session of its
own so that a Ctrl-C at the terminal reaches the command and not the service (the command
asks what to do with its job first), and stops it with SIGTERM, as a process manager would,
when the command ends. Jobs outlive it: they are in the database, and the next service to
start on it carries on with them.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.cli.client import ClientError

START_WITHIN = 120.0
"""Seconds the service may take to answer: the first start runs initdb and the migrations."""

STOP_WITHIN = 30.0
"""serve gives its children 15 s to stop."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_service(*, workers: int, log: Path) -> Iterator[str]:
    """`mxprobe serve --workers N` on 127.0.0.1, its output in `log`; yields its URL once
    `/healthz` answers. Raises `ClientError` if it does not start."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log.parent.mkdir(parents=True, exist_ok=True)
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *serve],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_healthy(process, url, log=log)
            yield url
        finally:
            _stop(process)


def _wait_healthy(process: subprocess.Popen[bytes], url: str, *, log: Path) -> None:
    deadline = time.monotonic() + START_WITHIN
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise ClientError(f"the local service did not start (its output: {log})")
        if time.monotonic() > deadline:
            raise ClientError(
                f"the local service did not answer within {START_WITHIN:g} s (its output: {log})"
            )
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait for serve to stop its children (a second Ctrl-C does not cut that
    short: it would leave the API, the workers and PostgreSQL running)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN
    while process.poll() is None:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
        except KeyboardInterrupt:
            continue
