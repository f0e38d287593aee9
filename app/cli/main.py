"""`mxprobe`: serve, api, worker, migrate, check, sim."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from app.cli import jobs as bulk_commands
from app.settings import Settings, get_settings

cli = typer.Typer(help="Reacher-compatible bulk email verification.", no_args_is_help=True)
console = Console()

_COLOURS = {"safe": "green", "risky": "yellow", "invalid": "red", "unknown": "magenta"}


def _database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded PostgreSQL under MXPROBE_DATA_DIR (started if needed).

    The URL is exported so every child process uses the same server."""
    url = settings.database_url
    if not url:
        from app.db import embedded

        url = embedded.start(settings.data_dir)
    os.environ["DATABASE_URL"] = url
    return url


def _require_schema(url: str) -> None:
    """Say plainly what to do when the database was never migrated (or is behind)."""
    from app.db import migrate as migrations

    if migrations.current(url) != migrations.head():
        console.print(
            "[red]The database schema is missing or out of date: run `mxprobe migrate`.[/]"
        )
        raise typer.Exit(2)


def _exit_cleanly_on_sigterm() -> None:
    """uvicorn and procrastinate re-raise SIGTERM once they have shut down; make that a normal
    exit so exit handlers run (the last process using the embedded PostgreSQL stops it)."""

    def leave(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the API listens on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes to start.", min=0)] = 2,
) -> None:
    """Start everything: PostgreSQL (embedded unless DATABASE_URL), migrations, API, workers."""
    from app.db import migrate

    url = _database_url(get_settings())
    migrate.upgrade(url)
    me = [sys.executable, "-m", "app.cli"]
    children = [subprocess.Popen([*me, "api", "--host", host, "--port", str(port)])]
    # MXPROBE_WORKER_METRICS_PORT set: the n-th worker (from 0) serves /metrics on it + n.
    metrics_port = get_settings().worker_metrics_port
    children += [
        subprocess.Popen(
            [*me, "worker", *(("--metrics-port", str(metrics_port + n)) if metrics_port else ())]
        )
        for n in range(workers)
    ]
    console.print(f"mxprobe: API on http://{host}:{port}, {workers} worker(s); Ctrl-C stops")

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
    raise typer.Exit(1 if failed and not stopping else 0)


@cli.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
) -> None:
    """Run the HTTP API alone."""
    from app.cli import api_server

    _require_schema(_database_url(get_settings()))
    get_settings.cache_clear()
    _exit_cleanly_on_sigterm()
    api_server.run(get_settings(), host=host, port=port)


@cli.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Tasks run at once (default MXPROBE_WORKER_CONCURRENCY).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics on this port, at /metrics "
            "(default MXPROBE_WORKER_METRICS_PORT; unset: not served).",
            min=1,
            max=65535,
        ),
    ] = None,
) -> None:
    """Run one worker process that drains the queue."""
    from worker.main import run  # the CLI is an entry point; it may start a worker

    _require_schema(_database_url(get_settings()))
    get_settings.cache_clear()
    _exit_cleanly_on_sigterm()
    settings = get_settings()
    if metrics_port is not None:
        settings = settings.model_copy(update={"worker_metrics_port": metrics_port})
    run(settings, concurrency=concurrency)


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema (ours and procrastinate's)."""
    from app.db import migrate as migrations

    migrations.upgrade(_database_url(get_settings()))
    console.print("database is up to date")


@cli.command()
def check(
    addresses: Annotated[
        list[str] | None, typer.Argument(help="Addresses to verify; - reads them from stdin.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print Reacher's JSON output.")] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Probe now, whatever the result cache holds.")
    ] = False,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Read addresses from FILE: one per line, or a CSV (as bulk)."
        ),
    ] = None,
    mx_host: Annotated[
        list[str] | None,
        typer.Option(
            "--mx-host",
            help="Probe this MX host (name or IP; repeat for backups) instead of asking DNS; "
            "private addresses need MXPROBE_ALLOW_PRIVATE_MX. Bypasses the result cache.",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="SMTP port to probe (default MXPROBE_SMTP_PORTS).", min=1, max=65535),
    ] = None,
    transcript: Annotated[
        bool,
        typer.Option(
            "--transcript",
            help="Print each SMTP conversation with timings (to stderr with --json); checks "
            "one address at a time and bypasses the result cache.",
        ),
    ] = False,
    policy: Annotated[
        str | None,
        typer.Option(help="Verdict policy: none or trusted_providers_only (MXPROBE_POLICY)."),
    ] = None,
) -> None:
    """Verify addresses now, from this machine (no database needed; with DATABASE_URL, a
    recent result in the service's result cache is reused unless --fresh)."""
    from app.cache import ResultCache
    from app.cli import check_input
    from app.engine.probes.transcript import Line, Transcript
    from app.verifiers import open_verifier

    settings = get_settings()
    if policy not in (None, "none", "trusted_providers_only"):
        raise typer.BadParameter("none or trusted_providers_only", param_hint="--policy")
    wanted = check_input.addresses(addresses or [], file=file)
    requests = [
        check_input.request(a, mx_hosts=mx_host or [], port=port, policy=policy) for a in wanted
    ]
    recorder = Transcript() if transcript else None
    conversations: list[list[Line]] = []

    async def run() -> list[dict[str, object]]:
        async with (
            open_verifier(settings, shared_limits=False, transcript=recorder) as verifier,
            ResultCache.opened(settings) as cache,
        ):
            if recorder is not None or mx_host:
                # Aimed at a host, or watched: probe now, and keep it out of the cache.
                outputs = []
                for one in requests:
                    outputs.append(await verifier.check(one))
                    conversations.append(recorder.take() if recorder else [])
            else:
                outputs = await asyncio.gather(
                    *(cache.check(verifier, one, fresh=fresh) for one in requests)
                )
        if recorder is not None and conversations:
            conversations[-1] += recorder.take()  # QUITs of sessions kept open until now
        return [o.to_json() for o in outputs]

    results = asyncio.run(run())
    if as_json:
        err = Console(stderr=True)
        for lines in conversations:
            check_input.print_transcript(err, lines)
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
        return
    for n, result in enumerate(results):
        verdict = str(result["is_reachable"])
        line = f"[bold {_COLOURS[verdict]}]{verdict:8}[/] {result['input']}"
        console.print(f"{line}  [dim]{_reason(result)}[/]", highlight=False)
        if recorder is not None:
            check_input.print_transcript(console, conversations[n])


def _reason(result: dict[str, object]) -> str:
    """One line on why: the SMTP answer, or the step that decided."""
    syntax: Any = result["syntax"]
    mx: Any = result["mx"]
    smtp: Any = result["smtp"]
    debug: Any = result["debug"]
    if not syntax["is_valid_syntax"]:
        return "invalid syntax"
    if "error" in mx:
        return f"DNS: {mx['error']['message']}"
    if not mx["accepts_mail"]:
        return "the domain accepts no mail"
    if "error" in smtp:
        detail = smtp["error"]["message"]
        return f"SMTP: {detail}" + (f" ({smtp['description']})" if "description" in smtp else "")
    probe = debug.get("probe") or {}
    flags = [k for k in ("is_catch_all", "has_full_inbox", "is_disabled") if smtp.get(k)]
    answer = f"{probe.get('code', '')} {probe.get('message', '')}".strip()
    return ", ".join([*flags, f"{probe.get('mx_host')}: {answer}"])


@cli.command()
def sim(
    bench: Annotated[
        bool, typer.Option(help="The benchmark world instead of the standard one.")
    ] = False,
) -> None:
    """Run the simulated mail world (DNS + fake MX servers on 127.0.0.x) until Ctrl-C."""
    from app.simulator import standard_world
    from app.simulator.bench import bench_world
    from app.simulator.serve import serve_forever

    serve_forever(bench_world() if bench else standard_world())


bulk_commands.register(cli)  # bulk, jobs, status, cancel, download


def main() -> None:
    cli()
