"""`mxprobe bulk`, `jobs`, `status`, `cancel`, `download`: the bulk API from a terminal.

They talk to a running service over HTTP (`app.cli.client`), or with `--local` to one they
start for themselves (`app.cli.local`). People read stderr (progress, messages); stdout holds
only what a script asks for (a table, `--json`, a download without `-o`).

Exit status: 0 done, 1 failed (an HTTP error, a cancelled job, a list not read to its end),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.prompt import Prompt
from rich.table import Table
from rich.text import Text

from app.cli.client import (
    DEFAULT_URL,
    Client,
    ClientError,
    Created,
    Format,
    Refused,
    SubmitOptions,
    Unreachable,
    file_size,
    output_format,
)
from app.cli.local import local_service

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

POLL_SECONDS = 0.5
"""How often a followed job's status is asked for."""

OUTAGE_PATIENCE = 300.0
"""How long a followed job's status may stay unavailable (the service restarting, its
database down: 503) before `bulk` gives up; the job itself goes on in the service."""

INTERRUPTED = 130
"""128 + SIGINT, as shells report a command stopped by Ctrl-C."""

VERDICTS = (("safe", "green"), ("risky", "yellow"), ("invalid", "red"), ("unknown", "magenta"))

Url = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="MXPROBE_URL",
        show_envvar=True,
        help="The service's base URL.",
        rich_help_panel="Service",
    ),
]
Secret = Annotated[
    str | None,
    typer.Option(
        "--secret",
        envvar="MXPROBE_HEADER_SECRET",
        show_envvar=True,
        help="The service's header secret (sent as x-reacher-secret).",
        rich_help_panel="Service",
    ),
]
Local = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Start a service for this command (`mxprobe serve` in the background, on the "
        "embedded PostgreSQL unless DATABASE_URL), and stop it afterwards.",
        rich_help_panel="Service",
    ),
]
JobArgument = Annotated[str, typer.Argument(help="The job's id or its token.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]mxprobe: {escape(message)}[/]", soft_wrap=True)
    return typer.Exit(1)


@contextmanager
def _reporting() -> Iterator[None]:
    """A `ClientError` is one red line and exit 1; Ctrl-C is exit 130 (not click's "Aborted!"
    and 1)."""
    try:
        yield
    except ClientError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(INTERRUPTED) from None


@contextmanager
def _service(url: str, secret: str | None, *, local: bool, workers: int) -> Iterator[Client]:
    """A client of the service at `url`, or of one started here (`--local`)."""
    if local and url not in (DEFAULT_URL, os.environ.get("MXPROBE_URL")):
        raise _fail("give --url or --local, not both")  # (--local wins over MXPROBE_URL)
    if not local:
        with Client(url, secret=secret) as client:
            yield client
        return
    from app.settings import get_settings

    log = get_settings().data_dir / "local-serve.log"
    err.print(f"starting a local service (mxprobe serve, its output in {escape(str(log))})")
    with (
        local_service(workers=workers, log=log) as local_url,
        Client(local_url, secret=secret) as client,
    ):
        yield client


def _reattach_hint(job: str, *, url: str, local: bool) -> str:
    where = " --local" if local else ("" if url == DEFAULT_URL else f" --url {url}")
    return f"mxprobe bulk --job {job}{where}"


def bulk(
    file: Annotated[
        str | None,
        typer.Argument(
            help="A list: one address per line, or a CSV with an email column (gzip too); "
            "- for stdin.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the results here: a .csv or .json file."),
    ] = None,
    job: Annotated[
        str | None,
        typer.Option("--job", help="Follow this job (id or token) instead of submitting one."),
    ] = None,
    from_email: Annotated[
        str | None, typer.Option(help="MAIL FROM for this job.", rich_help_panel="Probe")
    ] = None,
    hello_name: Annotated[
        str | None, typer.Option(help="EHLO name for this job.", rich_help_panel="Probe")
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option(help="A proxy's name from MXPROBE_PROXIES.", rich_help_panel="Probe"),
    ] = None,
    smtp_port: Annotated[
        list[int] | None,
        typer.Option(help="SMTP port to try, in order (repeat it).", rich_help_panel="Probe"),
    ] = None,
    url: Url = DEFAULT_URL,
    secret: Secret = None,
    local: Local = False,
    workers: Annotated[
        int,
        typer.Option(help="With --local: worker processes.", min=1, rich_help_panel="Service"),
    ] = 2,
) -> None:
    """Verify a list in bulk: submit it, follow it with a progress bar, write the results."""
    if (file is None) == (job is None):
        raise _fail("give a FILE (or - for stdin) to submit, or --job ID to follow, not both")
    with _reporting():
        fmt = output_format(output) if output else None
        options = SubmitOptions(
            from_email=from_email,
            hello_name=hello_name,
            proxy=proxy,
            smtp_ports=tuple(smtp_port or ()),
        )
        with _service(url, secret, local=local, workers=workers) as client:
            try:
                if job is None:
                    assert file is not None
                    created = _submit(client, file, options=options)
                    job = created.job_token
                    err.print(f"job {created.job_id} submitted (token {created.job_token})")
                status = _follow(client, job)
            except KeyboardInterrupt:
                if job is None:  # while uploading: no job, or one the service never named
                    raise
                _interrupted(client, job, url=url, local=local)
                raise typer.Exit(INTERRUPTED) from None
            except ClientError as exc:
                if job is None:
                    raise
                err.print(f"[red]mxprobe: {escape(str(exc))}[/]", soft_wrap=True)
                err.print(
                    f"the job may still be running: {_reattach_hint(job, url=url, local=local)}"
                )
                raise typer.Exit(1) from None
            raise typer.Exit(_finished(client, job, status, output=output, fmt=fmt))


def _submit(client: Client, file: str, *, options: SubmitOptions) -> Created:
    opened = (
        nullcontext(sys.stdin.buffer) if file == "-" else _open_input(Path(file))
    )  # stdin is not closed
    with opened as stream, _bytes_progress() as progress:
        name = "stdin" if file == "-" else Path(file).name
        task = progress.add_task(f"uploading {name}", total=file_size(stream))

        def sent(count: int) -> None:
            if count:
                progress.advance(task, count)
            else:  # the end of the file: the service now reads it, in the POST
                progress.update(task, description="the service is reading the list")

        return client.submit(stream, name=name, options=options, sent=sent)


def _open_input(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise ClientError(f"{path}: {exc.strerror or exc}") from exc


def _bytes_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    )


class _RateColumn(ProgressColumn):
    """Rows verified per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f}/s", style="progress.data.speed")


def _counts(status: dict[str, Any]) -> str:
    summary = status["summary"]
    return " ".join(
        f"[{colour}]{summary[f'total_{verdict}']} {verdict}[/]" for verdict, colour in VERDICTS
    )


def _follow(client: Client, job: str) -> dict[str, Any]:
    """Poll the job until it is no longer running, with a progress bar; its last status."""
    status = client.status(job)
    with Progress(
        TextColumn("[bold]job {task.fields[job]}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
        console=err,
    ) as progress:
        task = progress.add_task(
            "verifying",
            total=status["total_records"] or None,
            completed=status["total_processed"],  # re-attached: not counted in the rate
            job=status["job_id"],
            counts=_counts(status),
        )
        while status["job_status"] == "running":
            time.sleep(POLL_SECONDS)
            status = _status_riding_out(client, job, progress, task)
            progress.update(
                task,
                total=status["total_records"] or None,
                completed=status["total_processed"],
                counts=_counts(status),
            )
    return status


def _status_riding_out(
    client: Client, job: str, progress: Progress, task: TaskID
) -> dict[str, Any]:
    """The job's status, asked again while the service is unreachable or answers 502/503/504
    (a restart, a database outage), for up to `OUTAGE_PATIENCE` seconds; the bar says so."""
    deadline = time.monotonic() + OUTAGE_PATIENCE
    while True:
        try:
            return client.status(job)
        except (Unreachable, Refused) as exc:
            if (isinstance(exc, Refused) and not exc.passing) or time.monotonic() > deadline:
                raise
            wait = exc.retry_after if isinstance(exc, Refused) and exc.retry_after else 1.0
            progress.update(task, counts=f"[yellow]{escape(str(exc))}: asking again[/]")
            time.sleep(min(wait, 5.0))


def _interrupted(client: Client, job: str, *, url: str, local: bool) -> None:
    """Ctrl-C while following: cancel the job or leave it running, as the person says (a
    script, with no terminal on stdin, leaves it running)."""
    answer = "leave"
    if sys.stdin.isatty():
        try:
            answer = Prompt.ask(
                "\nCancel the job, or leave it running?",
                choices=["leave", "cancel"],
                default="leave",
                console=err,
            )
        except (KeyboardInterrupt, EOFError):
            err.print()
    if answer == "cancel":
        status = client.cancel(job)
        err.print(
            f"job {status['job_id']} cancelled: {status['total_processed']} of "
            f"{status['total_records']} rows verified (their results: "
            f"mxprobe download {job} -o FILE)"
        )
    else:
        err.print(
            f"job left running; follow it again with: {_reattach_hint(job, url=url, local=local)}"
        )
        if local:
            err.print(
                "(the local service stops now: the job waits in the database and carries on "
                "when a service runs on it again, `mxprobe serve` or `--local`)"
            )


def _took(status: dict[str, Any]) -> str:
    if "finished_at" not in status:
        return ""
    seconds = (
        datetime.fromisoformat(status["finished_at"]) - datetime.fromisoformat(status["created_at"])
    ).total_seconds()
    return f" in {seconds:,.1f} s"


def _finished(
    client: Client, job: str, status: dict[str, Any], *, output: Path | None, fmt: Format | None
) -> int:
    """Say how the job ended, write its results if asked; the exit status."""
    counts = ", ".join(f"{status['summary'][f'total_{v}']} {v}" for v, _ in VERDICTS)
    rows = f"{status['total_processed']} of {status['total_records']} rows"
    if status["job_status"] == "cancelled":
        err.print(f"[red]job {status['job_id']} was cancelled[/]: {rows} verified ({counts})")
        return 1
    err.print(f"job {status['job_id']} complete: {rows}{_took(status)} ({counts})")
    if output is not None and fmt is not None:
        _write(client, job, output, fmt=fmt)
    if "error" in status:
        err.print(f"[red]the list was not read to its end: {escape(status['error'])}[/]")
        return 1
    return 0


def _write(client: Client, job: str, path: Path, *, fmt: Format) -> None:
    """Stream the results into `path` through a `.part` file, renamed once complete (an
    interrupted download leaves no half file under the name asked for)."""
    part = path.with_name(path.name + ".part")
    try:
        with part.open("wb") as sink, _bytes_progress() as progress:
            task = progress.add_task(f"downloading {path.name}", total=None)
            size = client.download(
                job, sink, format=fmt, received=lambda n: progress.advance(task, n)
            )
        part.replace(path)
    except OSError as exc:
        raise ClientError(f"{path}: {exc.strerror or exc}") from exc
    finally:
        part.unlink(missing_ok=True)
    err.print(f"wrote {escape(str(path))} ({size:,} bytes)")


def jobs(
    limit: Annotated[int, typer.Option(help="At most this many jobs.", min=1, max=1000)] = 50,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    secret: Secret = None,
    local: Local = False,
) -> None:
    """List the jobs, newest first."""
    with _reporting(), _service(url, secret, local=local, workers=0) as client:
        listed = client.jobs(limit=limit)
    if as_json:
        print(json.dumps({"jobs": listed}, indent=2))
        return
    table = Table("job", "status", "created", "verified", *(v for v, _ in VERDICTS))
    for status in listed:
        summary = status["summary"]
        table.add_row(
            str(status["job_id"]),
            status["job_status"],
            status["created_at"],
            f"{status['total_processed']}/{status['total_records']}",
            *(str(summary[f"total_{v}"]) for v, _ in VERDICTS),
        )
    out.print(table)


def status(
    job: JobArgument,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    secret: Secret = None,
    local: Local = False,
) -> None:
    """Show a job's progress and summary."""
    with _reporting(), _service(url, secret, local=local, workers=0) as client:
        body = client.status(job)
    if as_json:
        print(json.dumps(body, indent=2))
        return
    _print_status(body)


def _print_status(body: dict[str, Any]) -> None:
    out.print(f"job {body['job_id']}: {body['job_status']}")
    out.print(f"  created   {body['created_at']}")
    if "finished_at" in body:
        out.print(f"  finished  {body['finished_at']}")
    out.print(f"  verified  {body['total_processed']} of {body['total_records']} rows")
    for verdict, colour in VERDICTS:
        out.print(f"  [{colour}]{verdict:9}[/] {body['summary'][f'total_{verdict}']}")
    if "error" in body:
        out.print(f"  [red]error[/]     {escape(body['error'])}")


def cancel(
    job: JobArgument,
    url: Url = DEFAULT_URL,
    secret: Secret = None,
    local: Local = False,
) -> None:
    """Cancel what a job has not verified yet (its verified results stay)."""
    with _reporting(), _service(url, secret, local=local, workers=0) as client:
        body = client.cancel(job)
    _print_status(body)


def download(
    job: JobArgument,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (else to stdout)."),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv or json (default: from the -o file's name, else json).",
            show_default=False,
        ),
    ] = None,
    url: Url = DEFAULT_URL,
    secret: Secret = None,
    local: Local = False,
) -> None:
    """Download a finished (or cancelled) job's results, in input order."""
    with _reporting():
        fmt = _download_format(format, output)
        with _service(url, secret, local=local, workers=0) as client:
            if output is None:
                client.download(job, sys.stdout.buffer, format=fmt)
                sys.stdout.buffer.flush()
            else:
                _write(client, job, output, fmt=fmt)


def _download_format(given: str | None, output: Path | None) -> Format:
    if given is None:
        return output_format(output) if output is not None else "json"
    if given == "csv":
        return "csv"
    if given == "json":
        return "json"
    raise ClientError(f"--format {given}: csv or json")


BULK_EPILOG = (
    "Ctrl-C asks whether to cancel the job or leave it running (with no terminal on stdin, "
    "it is left running); --job follows it again. Exit status: 0 complete, 1 failed "
    "(an error, a cancelled job, a list not read to its end), 130 interrupted."
)


def register(cli: typer.Typer) -> None:
    """Add these commands to `mxprobe`."""
    cli.command(epilog=BULK_EPILOG)(bulk)
    for command in (jobs, status, cancel, download):
        cli.command()(command)
