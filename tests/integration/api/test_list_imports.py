"""Lists from a URL, a CSV text or an upload, through the API and a real worker, against a real
HTTP server on loopback and the simulated mail world. A database per test."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from app import imports
from app.db.jobs import JobOptions
from app.db.session import make_engine, make_sessionmaker, session_scope
from app.lists import Row
from app.lists.sniff import SNIFF_LINES
from app.settings import Settings
from app.simulator import World
from tests.fixtures.api import in_process_api
from tests.fixtures.http_files import (
    Exchange,
    HttpFiles,
    basic_auth,
    body,
    chunks,
    drop,
    gzip_body,
    stall,
)
from tests.fixtures.http_files import http_files as http_files
from tests.integration.api.test_bulk_with_worker import bulk_settings, running_worker, wait_until

ADDRESSES = ["alice@normal.test", "zed@normal.test", "bob@normal.test", "not an address"]
VERDICTS = ["safe", "invalid", "safe", "invalid"]
LIST = "".join(f"{a}\r\n" for a in ADDRESSES).encode()
CRM_EXPORT = (
    "\ufeffName;E-Mail;Company\r\n"
    'Alice;alice@normal.test;"Acme; Inc"\r\n'
    "Zed;zed@normal.test;=cmd()\r\n"
    "\r\n"
    "Bob;bob@normal.test;\r\n"
    "Nobody;not an address;X\r\n"
).encode()


@pytest.fixture
def settings(world: World, fresh_database_url: str) -> Settings:
    return bulk_settings(world, fresh_database_url, allow_private_urls=True)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api(settings) as http:
        yield http


async def created(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["job_id"])


async def complete(client: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    return await wait_until(client, job_id, done=lambda s: s["job_status"] == "complete")


async def results(client: httpx.AsyncClient, job_id: int) -> list[dict[str, Any]]:
    response = await client.get(f"/v0/bulk/{job_id}/download")
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def imported(
    client: httpx.AsyncClient, settings: Settings, url: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The list at `url` as a job, read and verified by a worker: its status and results."""
    job_id = await created(
        await client.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
    )
    async with running_worker(settings):
        return await complete(client, job_id), await results(client, job_id)


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    return str(response.json()["error"])


async def test_a_remote_list_is_read_by_a_worker_and_verified_in_file_order(
    client: httpx.AsyncClient, settings: Settings, http_files: HttpFiles
) -> None:
    status, rows = await imported(client, settings, http_files.serve("/list.txt", body(LIST)))

    assert status["total_records"] == status["total_processed"] == len(ADDRESSES)
    assert "error" not in status
    assert [r["input"] for r in rows] == ADDRESSES
    assert [r["is_reachable"] for r in rows] == VERDICTS
    assert all("row" not in r for r in rows)


async def test_a_csv_export_keeps_its_own_columns_in_the_downloads(
    client: httpx.AsyncClient, settings: Settings, http_files: HttpFiles
) -> None:
    url = http_files.serve("/crm.csv.gz", body(gzip.compress(CRM_EXPORT)))
    job_id = await created(
        await client.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
    )
    async with running_worker(settings):
        await complete(client, job_id)
        rows = await results(client, job_id)
        as_csv = (await client.get(f"/v0/bulk/{job_id}/download?format=csv")).text

    assert [r["input"] for r in rows] == ADDRESSES
    assert [r["row"] for r in rows] == [
        {"Name": "Alice", "Company": "Acme; Inc"},
        {"Name": "Zed", "Company": "=cmd()"},
        {"Name": "Bob", "Company": ""},
        {"Name": "Nobody", "Company": "X"},
    ]
    table = list(csv.reader(io.StringIO(as_csv)))
    assert table[0][:4] == ["Name", "Company", "input", "is_reachable"]
    assert [line[:4] for line in table[1:]] == [
        ["Alice", "Acme; Inc", "alice@normal.test", "safe"],
        ["Zed", "'=cmd()", "zed@normal.test", "invalid"],
        ["Bob", "", "bob@normal.test", "safe"],
        ["Nobody", "X", "not an address", "invalid"],
    ]


async def test_csv_text_in_the_request_is_enqueued_at_once(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    job_id = await created(
        await client.post("/v0/bulk", json={"input_type": "csv", "input": CRM_EXPORT.decode()})
    )
    status = (await client.get(f"/v0/bulk/{job_id}")).json()
    assert status["total_records"] == len(ADDRESSES)
    assert status["job_status"] == "running"
    async with running_worker(settings):
        await complete(client, job_id)
        rows = await results(client, job_id)
    assert [r["is_reachable"] for r in rows] == VERDICTS


async def test_an_uploaded_file_with_options_as_form_fields(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post(
        "/v0/bulk",
        files={"file": ("list.txt.gz", gzip.compress(LIST), "application/gzip")},
        data={"hello_name": "upload.mxprobe.test", "smtp_ports": str(settings.smtp_ports[0])},
    )
    job_id = await created(response)
    async with running_worker(settings):
        await complete(client, job_id)
        rows = await results(client, job_id)
    assert [r["is_reachable"] for r in rows] == VERDICTS


@pytest.mark.parametrize(
    ("files", "data", "says"),
    [
        (None, {"hello_name": "x.test"}, "file"),
        ({"file": ("l.txt", b"no addresses here\njust words\n")}, {}, "no email address"),
        ({"file": ("l.txt", LIST)}, {"smtp_ports": "25,x"}, "smtp_ports"),
        ({"file": ("l.txt", LIST)}, {"hello_name": "a b"}, "hello_name"),
        ({"file": ("l.txt", LIST)}, {"proxy": "nowhere"}, "proxy"),
    ],
)
async def test_a_bad_upload_is_a_400_and_creates_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    files: dict[str, Any] | None,
    data: dict[str, str],
    says: str,
) -> None:
    if files is None:  # a form without a file part
        response = await client.post("/v0/bulk", data=data, files={"other": ("x", b"x")})
    else:
        response = await client.post("/v0/bulk", files=files, data=data)
    assert says in error_of(response, 400)
    assert jobs_in(settings) == 0


def jobs_in(settings: Settings) -> int:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM bulk_jobs").fetchone()
    assert row is not None
    return int(row[0])


async def test_what_can_be_known_at_once_is_an_error_on_the_post(
    client: httpx.AsyncClient, settings: Settings, http_files: HttpFiles
) -> None:
    http_files.serve("/words.txt", body(b"hello\nworld\n"))

    async def post(url: str) -> httpx.Response:
        return await client.post("/v0/bulk", json={"input_type": "remote_url", "input": url})

    assert "404" in error_of(await post(http_files.url("/missing.txt")), 502)
    assert "no email address" in error_of(await post(http_files.url("/words.txt")), 400)
    assert "http" in error_of(await post("ftp://127.0.0.1/list.txt"), 400)
    assert jobs_in(settings) == 0


async def test_private_addresses_are_refused_unless_allowed(
    world: World, fresh_database_url: str, http_files: HttpFiles
) -> None:
    url = http_files.serve("/list.txt", body(LIST))
    async with in_process_api(
        bulk_settings(world, fresh_database_url)
    ) as http:  # allow_private_urls: no
        response = await http.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
    assert "private" in error_of(response, 400).lower()
    assert http_files.requests_for("/list.txt") == []


async def test_a_connection_dropped_mid_file_ends_the_import_with_what_was_read(
    client: httpx.AsyncClient, settings: Settings, http_files: HttpFiles
) -> None:
    lines = [f"u{i}@normal.test\n".encode() for i in range(20_000)]
    half = b"".join(lines[:10_000])
    url = http_files.serve("/cut.txt", drop(half, declared_length=2 * len(half)))
    job_id = await created(
        await client.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
    )
    async with running_worker(settings, concurrency=50):
        status = await wait_until(client, job_id, done=lambda s: "error" in s, within=60)
    assert 0 < status["total_records"] < len(lines)
    assert status["total_processed"] <= status["total_records"]
    assert "reading the list stopped" in status["error"]


async def test_a_list_that_stalls_mid_batch_keeps_every_row_read_before(
    world: World, fresh_database_url: str, http_files: HttpFiles
) -> None:
    """Rows are enqueued in batches of thousands; those of a batch cut short by a stall (or a
    drop, or the byte limit) are the job's too: the status's total_records is the rows read."""
    settings = bulk_settings(world, fresh_database_url, allow_private_urls=True, remote_timeout=1.0)
    read = [f"u{n}@normal.test" for n in range(SNIFF_LINES + 10)]  # the POST sees a first row
    head = "".join(f"{a}\n" for a in read).encode()
    url = http_files.serve("/stalls.txt", stall(head, declared_length=10 * len(head)))
    async with in_process_api(settings) as client:
        status, rows = await imported(client, settings, url)

    assert status["total_records"] == status["total_processed"] == len(read)
    assert "reading the list stopped" in status["error"]
    assert [r["input"] for r in rows] == read


async def test_credentials_in_the_url_are_sent_and_never_stored(
    world: World, fresh_database_url: str, http_files: HttpFiles
) -> None:
    key = Fernet.generate_key().decode()
    settings = bulk_settings(world, fresh_database_url, allow_private_urls=True, secret_key=key)
    url = http_files.serve(
        "/private.txt", basic_auth("reader", "s3cr:et", body(LIST)), userinfo="reader:s3cr%3Aet"
    )
    async with in_process_api(settings) as http:
        job_id = await created(
            await http.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
        )
        async with running_worker(settings):
            await complete(http, job_id)
    with psycopg.connect(fresh_database_url) as conn:
        row = conn.execute(
            "SELECT source, import_credentials, options::text FROM bulk_jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None
    source, sealed, options = row
    assert source == http_files.url("/private.txt")
    assert sealed is None  # erased when the import ended
    assert "s3cr" not in source + options


async def test_credentials_need_a_key_to_be_kept(
    client: httpx.AsyncClient, http_files: HttpFiles
) -> None:
    url = http_files.serve("/p.txt", body(LIST), userinfo="reader:secret")
    response = await client.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
    assert "MXPROBE_SECRET_KEY" in error_of(response, 400)


async def test_more_rows_than_allowed_ends_the_import_at_the_limit(
    world: World, fresh_database_url: str, http_files: HttpFiles
) -> None:
    settings = bulk_settings(world, fresh_database_url, allow_private_urls=True, bulk_max_emails=3)
    url = http_files.serve("/list.txt", body(LIST * 3))
    async with in_process_api(settings) as http:
        job_id = await created(
            await http.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
        )
        async with running_worker(settings):
            status = await complete(http, job_id)
    assert status["total_records"] == status["total_processed"] == 3
    assert "more than 3 rows" in status["error"]


async def test_a_resumed_import_skips_the_rows_already_counted(
    settings: Settings, http_files: HttpFiles
) -> None:
    lines = [f"u{i}@normal.test" for i in range(12_345)]
    url = http_files.serve("/big.txt", chunks(lambda: (f"{line}\n".encode() for line in lines)))
    assert settings.database_url
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with session_scope(sessions) as session:
            job = await imports.submit_url(session, url, options=JobOptions(), settings=settings)
        # A first run counted 7,000 rows, then its worker died.
        first = [Row(address=line, extra=()) for line in lines[:7_000]]
        async with session_scope(sessions) as session:
            await imports.enqueue(session, job.job_id, first, first_position=0, columns=None)

        await imports.import_url(sessions, job.job_id, settings=settings)
        await imports.import_url(sessions, job.job_id, settings=settings)  # a stray retry
    finally:
        await engine.dispose()

    with psycopg.connect(settings.database_url) as conn:
        total, importing = conn.execute(
            "SELECT total_records, importing FROM bulk_jobs WHERE id = %s", (job.job_id,)
        ).fetchone() or (None, None)
        tasks = conn.execute(
            "SELECT (args->>'position')::int, args->>'email' FROM procrastinate_jobs"
            " WHERE task_name = 'mxprobe:verify_address' ORDER BY 1"
        ).fetchall()
    assert (total, importing) == (len(lines), False)
    assert [email for _, email in tasks] == lines
    assert [position for position, _ in tasks] == list(range(len(lines)))


async def test_status_is_truthful_while_a_large_list_is_read(
    client: httpx.AsyncClient, settings: Settings, http_files: HttpFiles
) -> None:
    lines = [f"u{i}@nowhere.test\n".encode() for i in range(60_000)]
    url = http_files.serve("/large.txt", gzip_body(b"".join(lines)))
    job_id = await created(
        await client.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
    )
    seen = []
    async with running_worker(settings, concurrency=4):
        for _ in range(200):
            status = (await client.get(f"/v0/bulk/{job_id}")).json()
            seen.append(status)
            assert status["total_processed"] <= status["total_records"] <= len(lines)
            if status["total_records"] == len(lines):
                break
            await asyncio.sleep(0.05)
    assert seen[-1]["total_records"] == len(lines)
    assert all(s["job_status"] == "running" and "finished_at" not in s for s in seen)


async def test_a_job_cancelled_before_its_list_is_read_reads_nothing(
    client: httpx.AsyncClient, settings: Settings, http_files: HttpFiles
) -> None:
    url = http_files.serve("/list.txt", body(LIST))
    job_id = await created(
        await client.post("/v0/bulk", json={"input_type": "remote_url", "input": url})
    )
    cancelled = await client.delete(f"/v0/bulk/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert len(http_files.requests_for("/list.txt")) == 1  # the POST's check

    async with running_worker(settings):
        for _ in range(100):
            with psycopg.connect(str(settings.database_url)) as conn:
                row = conn.execute(
                    "SELECT importing, total_records FROM bulk_jobs WHERE id = %s", (job_id,)
                ).fetchone()
            if row == (False, 0):
                break
            await asyncio.sleep(0.05)
    assert row == (False, 0)
    assert len(http_files.requests_for("/list.txt")) == 1  # the worker fetched nothing
    status = (await client.get(f"/v0/bulk/{job_id}")).json()
    assert status["job_status"] == "cancelled"


async def test_two_runs_of_one_import_at_once_count_every_row_once(
    settings: Settings, http_files: HttpFiles
) -> None:
    """A worker alive but retried as stalled: two runs read the same list. The one that falls
    behind leaves the job to the other, which reads it to its end."""
    lines = [f"u{i}@nowhere.test" for i in range(30_000)]

    def paced(exchange: Exchange) -> None:
        exchange.send_head(200, {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
        for start in range(0, len(lines), 1000):
            exchange.write_chunk("".join(f"{a}\n" for a in lines[start : start + 1000]).encode())
            if exchange.wait(0.05):
                return
        exchange.write_chunk(b"")

    url = http_files.serve("/paced.txt", paced)
    assert settings.database_url
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with session_scope(sessions) as session:
            job = await imports.submit_url(session, url, options=JobOptions(), settings=settings)

        async def late() -> None:
            await asyncio.sleep(0.4)
            await imports.import_url(sessions, job.job_id, settings=settings)

        await asyncio.gather(imports.import_url(sessions, job.job_id, settings=settings), late())
    finally:
        await engine.dispose()

    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT total_records, importing, import_error FROM bulk_jobs WHERE id = %s",
            (job.job_id,),
        ).fetchone()
        deferred = conn.execute(
            "SELECT count(*), count(DISTINCT args->>'position') FROM procrastinate_jobs"
            " WHERE task_name = 'mxprobe:verify_address'"
        ).fetchone()
    assert row == (len(lines), False, None)
    assert deferred == (len(lines), len(lines))
