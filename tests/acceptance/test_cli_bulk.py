"""`mxprobe bulk`, `jobs`, `status`, `cancel`, `download` as a person or a script runs them,
against the shipped `mxprobe serve` on the simulated world; what they write is compared with
what the API serves.

`bulk` runs as a subprocess (signals, a terminal, stdin); the other commands run in-process
through typer's runner (the same code over real HTTP, without a second of interpreter start-up
each). The service has no workers of its own, so a job stays running until the module's worker
starts: the Ctrl-C tests come first in the file, and the first test that needs results starts
the worker (`worker` fixture), which then runs until the module ends.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from app.cli.main import cli
from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.bulk import fast_bulk_env
from tests.fixtures.database import create_database, drop_database
from tests.fixtures.services import (
    ROOT,
    Service,
    free_port,
    healthy,
    service_env,
    start_worker,
)

SECRET = "cli-test-secret"
HEADERS = {"x-reacher-secret": SECRET}

LIST = [
    ("Alice", "alice@normal.test", "safe"),
    ("Nobody", "nobody@normal.test", "invalid"),
    ("Anyone", "anyone@catchall.test", "risky"),
    ("Disabled", "alice@disabled.test", "invalid"),
    ("Gone", "x@nxdomain.test", "invalid"),
    ("Junk", "not an email", "invalid"),
]


@dataclass(frozen=True)
class Served:
    url: str
    env: dict[str, str]
    """The service's environment, for its worker."""


@pytest.fixture(scope="module")
def service(
    database_url: str,
    template_database: str,
    session_world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """`mxprobe serve --workers 0` with a header secret, on a database of its own."""
    name = f"mxprobe_cli_{uuid.uuid4().hex[:12]}"
    url = create_database(database_url, name, template=template_database)
    env = service_env(
        url, {**world_env(session_world), **fast_bulk_env(), "MXPROBE_HEADER_SECRET": SECRET}
    )
    port = free_port()
    logs = tmp_path_factory.mktemp("cli_bulk")
    serve = Service(
        "serve",
        ["-m", "app.cli", "serve", "--port", str(port), "--workers", "0"],
        env=env,
        logs=logs,
    )
    try:
        yield Served(healthy(serve, f"http://127.0.0.1:{port}", within=60), env)
        assert "Traceback" not in serve.output(), serve.output()
    finally:
        serve.stop()
        drop_database(database_url, name)


@pytest.fixture(scope="module")
def worker(service: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A worker for the service, from the first test that asks until the module ends."""
    process = start_worker(
        "worker", env=service.env, logs=tmp_path_factory.mktemp("worker"), concurrency=10
    )
    yield
    process.stop()


def cli_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MXPROBE_") and k != "DATABASE_URL"
    }
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def mxprobe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a process, stdin not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env or cli_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stdout_bytes: bytes
    stderr: str


def run(
    *args: str, stdin: str | None = None, secret: bool = True, env: dict[str, str] | None = None
) -> Ran:
    """The command in this process (typer's runner), the secret from the environment."""
    variables = {"MXPROBE_HEADER_SECRET": SECRET} if secret else {}
    variables.update(COLUMNS="200", **(env or {}))
    result = CliRunner().invoke(cli, list(args), input=stdin, env=variables)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stdout_bytes, result.stderr)


def submitted_job(stderr: str) -> tuple[int, str]:
    found = re.search(r"job (\d+) submitted \(token ([A-Za-z0-9_-]{32})\)", stderr)
    assert found, stderr
    return int(found[1]), found[2]


def api(service: Served, path: str, **params: str) -> httpx.Response:
    response = httpx.get(f"{service.url}{path}", params=params, headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    return response


def test_ctrl_c_at_a_terminal_asks_and_cancels(service: Served, tmp_path: Path) -> None:
    source = tmp_path / "list.txt"
    source.write_text("alice@normal.test\nbob@normal.test\n")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "bulk", str(source), "--url", service.url],
        cwd=ROOT,
        env=cli_env(MXPROBE_HEADER_SECRET=SECRET),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    seen = bytearray()

    def read_until(text: bytes) -> None:
        deadline = time.monotonic() + 30
        while text not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            if select.select([controller], [], [], 0.2)[0]:
                try:
                    seen.extend(os.read(controller, 4096))
                except OSError:  # the process is gone
                    break

    try:
        read_until(b"submitted")
        job_id, token = submitted_job(seen.decode(errors="replace"))
        read_until(b"0/2")  # the progress bar
        process.send_signal(signal.SIGINT)
        read_until(b"leave it running?")
        os.write(controller, b"cancel\n")
        assert process.wait(timeout=20) == 130
        read_until(b"mxprobe download")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    said = seen.decode(errors="replace")
    assert f"job {job_id} cancelled: 0 of 2 rows verified" in said, said
    assert "Traceback" not in said
    assert api(service, f"/v0/bulk/{job_id}").json()["job_status"] == "cancelled"

    # following a cancelled job fails; `mxprobe cancel` and `download` of one work
    followed = run("bulk", "--job", token, "--url", service.url)
    assert followed.returncode == 1
    assert f"job {job_id} was cancelled: 0 of 2 rows verified" in followed.stderr

    other = httpx.post(
        f"{service.url}/v0/bulk",
        json={"input_type": "array", "input": ["a@normal.test"]},
        headers=HEADERS,
    ).json()["job_id"]
    cancelled = run("cancel", str(other), "--url", service.url)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {other}: cancelled" in cancelled.stdout
    fetched = run("download", str(other), "--url", service.url)
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout) == {"results": []}


def _wait_for(output: Path, text: str, *, process: subprocess.Popen[Any]) -> str:
    deadline = time.monotonic() + 30
    while text not in (seen := output.read_text()):
        assert process.poll() is None, seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    return seen


def test_ctrl_c_leaves_the_job_running_and_bulk_job_follows_it_again(
    service: Served, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "list.txt"
    source.write_text("".join(f"{e}\n" for _, e, _ in LIST))
    stderr = tmp_path / "bulk.err"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "bulk", str(source), "--url", service.url],
            cwd=ROOT,
            env=cli_env(MXPROBE_HEADER_SECRET=SECRET),
            stdin=subprocess.DEVNULL,  # a script: nobody to ask
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        job_id, token = submitted_job(_wait_for(stderr, "submitted", process=process))
        time.sleep(0.3)  # following it
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 130
    said = stderr.read_text()
    assert f"follow it again with: mxprobe bulk --job {token} --url {service.url}" in said
    assert "Traceback" not in said
    assert api(service, f"/v0/bulk/{job_id}").json()["job_status"] == "running"

    request.getfixturevalue("worker")
    results = tmp_path / "results.json"
    again = mxprobe(
        "bulk",
        "--job",
        str(job_id),
        "-o",
        str(results),
        "--url",
        service.url,
        env=cli_env(MXPROBE_HEADER_SECRET=SECRET),
    )
    assert again.returncode == 0, again.stderr
    assert f"job {job_id} complete: 6 of 6 rows" in again.stderr
    assert results.read_bytes() == api(service, f"/v0/bulk/{job_id}/download").content


@pytest.mark.usefixtures("worker")
def test_bulk_uploads_a_csv_follows_it_and_writes_what_the_api_serves(
    service: Served, tmp_path: Path
) -> None:
    source = tmp_path / "crm.csv"
    source.write_text("Name,E-mail\n" + "".join(f"{n},{e}\n" for n, e, _ in LIST))
    results = tmp_path / "results.csv"

    done = mxprobe(
        "bulk", str(source), "-o", str(results), "--url", service.url, "--secret", SECRET
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    job_id, token = submitted_job(done.stderr)
    assert f"job {job_id} complete: 6 of 6 rows" in done.stderr
    assert "1 safe, 1 risky, 4 invalid, 0 unknown" in done.stderr
    assert f"wrote {results}" in done.stderr
    assert results.read_bytes() == api(service, f"/v0/bulk/{token}/download", format="csv").content
    assert not (tmp_path / "results.csv.part").exists()
    rows = results.read_text().splitlines()
    assert rows[0].startswith("Name,")  # the list's own columns come back first
    assert [row.split(",")[0] for row in rows[1:]] == [n for n, _, _ in LIST]

    as_json = tmp_path / "again.json"
    fetched = run("download", str(job_id), "-o", str(as_json), "--url", service.url)
    assert fetched.returncode == 0, fetched.stderr
    assert as_json.read_bytes() == api(service, f"/v0/bulk/{job_id}/download").content
    verdicts = [r["is_reachable"] for r in json.loads(as_json.read_text())["results"]]
    assert verdicts == [v for _, _, v in LIST]

    to_stdout = run("download", token, "--format", "csv", "--url", service.url)
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout_bytes == results.read_bytes()

    status = run("status", str(job_id), "--json", "--url", service.url)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == api(service, f"/v0/bulk/{job_id}").json()
    shown = run("status", str(job_id), env={"MXPROBE_URL": service.url})  # the same
    assert f"job {job_id}: complete" in shown.stdout
    assert "verified  6 of 6 rows" in shown.stdout

    listed = run("jobs", "--json", "--url", service.url)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == api(service, "/v0/bulk").json()
    table = run("jobs", "--url", service.url)
    assert re.search(rf"│ {job_id} +│ complete +│ .* │ 6/6 +│ 1 +│ 1 +│ 4 +│ 0 +│", table.stdout)


@pytest.mark.usefixtures("worker")
def test_bulk_reads_a_plain_list_from_stdin_into_json(service: Served, tmp_path: Path) -> None:
    results = tmp_path / "out.json"

    done = run(
        "bulk",
        "-",
        "-o",
        str(results),
        "--url",
        service.url,
        stdin="alice@normal.test\r\nnobody@normal.test\r\n",
    )

    assert done.returncode == 0, done.stderr
    job_id, _ = submitted_job(done.stderr)
    assert results.read_bytes() == api(service, f"/v0/bulk/{job_id}/download").content
    outputs = json.loads(results.read_text())["results"]
    assert [o["input"] for o in outputs] == ["alice@normal.test", "nobody@normal.test"]


def test_errors_are_one_clear_line_and_exit_1(service: Served, tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    refused = run("jobs", "--url", nobody)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"mxprobe: no mxprobe service is answering at {nobody}")
    assert "mxprobe serve" in refused.stderr
    assert "--local" in refused.stderr

    no_secret = run("status", "1", "--url", service.url, secret=False)
    assert no_secret.returncode == 1
    assert "HTTP 401: missing x-reacher-secret header" in no_secret.stderr

    unknown = run("status", "999999", "--url", service.url)
    assert unknown.returncode == 1
    assert "HTTP 404: job 999999 not found" in unknown.stderr

    empty = tmp_path / "empty.txt"
    empty.write_text("no addresses here\n")
    refused_list = run("bulk", str(empty), "--url", service.url)
    assert refused_list.returncode == 1
    assert "HTTP 400: no email address found" in refused_list.stderr

    bad_name = run("bulk", str(empty), "-o", "out.xlsx", "--url", service.url)
    assert bad_name.returncode == 1
    assert ".csv or .json" in bad_name.stderr

    missing = run("bulk", str(tmp_path / "nothing.txt"), "--url", service.url)
    assert missing.returncode == 1
    assert "No such file or directory" in missing.stderr

    for done in (refused, no_secret, unknown, refused_list, bad_name, missing):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_local_starts_its_own_service(
    world: World, fresh_database_url: str, tmp_path: Path
) -> None:
    """On the test's database (DATABASE_URL): starting the embedded PostgreSQL is
    `mxprobe serve`'s own business, tested in test_serve.py, and initdb takes seconds."""
    source = tmp_path / "list.txt"
    source.write_text("alice@normal.test\nnobody@normal.test\n")
    results = tmp_path / "results.json"
    env = cli_env(
        **{**world_env(world), **fast_bulk_env()},
        DATABASE_URL=fresh_database_url,
        MXPROBE_DATA_DIR=str(tmp_path),
    )

    done = mxprobe("bulk", str(source), "--local", "--workers", "1", "-o", str(results), env=env)

    assert done.returncode == 0, done.stderr
    verdicts = [r["is_reachable"] for r in json.loads(results.read_text())["results"]]
    assert verdicts == ["safe", "invalid"]
    log = (tmp_path / "local-serve.log").read_text()
    assert "API on http://127.0.0.1:" in log
    assert "Traceback" not in log, log
    # the service is gone with the command: nothing listens on its port any more
    port = int(re.search(r"API on http://127.0.0.1:(\d+)", log)[1])  # type: ignore[index]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
