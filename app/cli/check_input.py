"""What `mxprobe check` is asked: addresses from its arguments, a file or stdin, and the
options that shape each request (`--mx-host`, `--port`, `--policy`), plus how a transcript is
printed."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from app.engine import CheckRequest
from app.engine.probes.transcript import Line, render
from app.engine.rules.syntax import has_control_chars
from app.lists.reader import read_rows
from app.lists.rows import ListError

_COLOURS = {"client": "cyan", "server": "green", "event": "dim"}


def addresses(arguments: Sequence[str], *, file: Path | None) -> list[str]:
    """The addresses named: each argument (``-`` reads stdin), then the file's. A file or
    stdin holds one address per line, or a CSV whose address column is found as for
    `POST /v0/bulk` (gzip too)."""
    found: list[str] = []
    for argument in arguments:
        found += _read(sys.stdin.buffer.read(), "stdin") if argument == "-" else [argument]
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {file}: {exc.strerror}", param_hint="--file"
            ) from exc
        found += _read(data, str(file))
    if not found:
        raise typer.BadParameter(
            "no addresses: name some, or give - to read stdin, or --file FILE",
            param_hint="ADDRESSES",
        )
    return found


def _read(data: bytes, name: str) -> list[str]:
    try:
        _, rows = read_rows(data)
    except ListError as exc:
        raise typer.BadParameter(f"{name}: {exc}") from exc
    return [row.address for row in rows if row.address]


def request(
    address: str, *, mx_hosts: Sequence[str], port: int | None, policy: str | None
) -> CheckRequest:
    for host in mx_hosts:
        if not host.strip() or has_control_chars(host) or " " in host.strip():
            raise typer.BadParameter(
                f"{host!r} is not a host name or address", param_hint="--mx-host"
            )
    return CheckRequest(
        to_email=address,
        smtp_ports=(port,) if port is not None else None,
        policy=policy,
        mx_hosts=tuple(h.strip() for h in mx_hosts) or None,
    )


def print_transcript(console: Console, lines: Sequence[Line]) -> None:
    """Each line as `render` writes it, coloured by who spoke."""
    for line in lines:
        console.print(f"[{_COLOURS[line.direction]}]{escape(render(line))}[/]", highlight=False)
