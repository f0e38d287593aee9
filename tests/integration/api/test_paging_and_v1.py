"""Reacher's v1 bulk API, paged downloads on v0 and v1, and the job list. In-process, one
rolled-back transaction per test; finished jobs are stored through the repository a worker
uses, running ones are created through the API (no worker drains them)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Text, cast, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import jobs, results
from app.db.models import BulkResult, BulkRow
from app.settings import Settings
from tests.fixtures.api import in_process_api
from tests.fixtures.results import stored_output

ROWS = 120


def address(position: int) -> str:
    return f"user{position}@x.test"


@pytest.fixture
async def client(
    shared_database_url: str, api_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=shared_database_url, bulk_max_emails=200)
    async with in_process_api(settings, sessions=api_sessions) as http:
        yield http


@pytest.fixture
async def tenant_client(
    shared_database_url: str, api_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=shared_database_url, require_job_token=True)
    async with in_process_api(settings, sessions=api_sessions) as http:
        yield http


async def finished(session: AsyncSession, rows: int, *, skip: frozenset[int] = frozenset()) -> int:
    """A job of `rows` rows, every one but `skip` verified; complete unless rows are skipped."""
    job = await jobs.create(session, total_records=rows, options=jobs.JobOptions())
    await results.record_many(
        session,
        [
            results.NewResult(job.job_id, p, address(p), "safe", stored_output(address(p)))
            for p in range(rows)
            if p not in skip
        ],
    )
    return job.job_id


@pytest.fixture
async def job_id(db_session: AsyncSession) -> int:
    return await finished(db_session, ROWS)


def inputs(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["input"] for r in response.json()["results"]]


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    return str(body["error"])


# --- v0 downloads, paged


@pytest.mark.parametrize("route", ["download", "result", "results"])
async def test_v0_has_no_default_limit(client: httpx.AsyncClient, job_id: int, route: str) -> None:
    assert inputs(await client.get(f"/v0/bulk/{job_id}/{route}")) == [
        address(p) for p in range(ROWS)
    ]


@pytest.mark.parametrize(("offset", "limit"), [(0, 1), (0, 50), (50, 50), (100, 50), (119, 5)])
async def test_v0_pages_in_input_order(
    client: httpx.AsyncClient, job_id: int, offset: int, limit: int
) -> None:
    response = await client.get(
        f"/v0/bulk/{job_id}/download", params={"offset": offset, "limit": limit}
    )
    assert inputs(response) == [address(p) for p in range(offset, min(offset + limit, ROWS))]


async def test_pages_join_up_to_the_whole_job(client: httpx.AsyncClient, job_id: int) -> None:
    pages = [
        inputs(await client.get(f"/v0/bulk/{job_id}/results?limit=7&offset={start}"))
        for start in range(0, ROWS, 7)
    ]
    assert [a for page in pages for a in page] == [address(p) for p in range(ROWS)]


async def test_past_the_end_is_an_empty_page(client: httpx.AsyncClient, job_id: int) -> None:
    assert inputs(await client.get(f"/v0/bulk/{job_id}/download?offset={ROWS}")) == []
    huge = await client.get(f"/v0/bulk/{job_id}/download?offset=2147483647&limit=1000000")
    assert inputs(huge) == []


async def test_csv_pages(client: httpx.AsyncClient, job_id: int) -> None:
    response = await client.get(f"/v0/bulk/{job_id}/download?format=csv&offset=10&limit=3")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == f'attachment; filename="bulk-{job_id}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["input"] for row in rows] == [address(10), address(11), address(12)]


async def test_a_cancelled_job_pages_by_input_row(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """Rows never verified take no place: a page starts at its input row all the same."""
    job_id = await finished(db_session, 10, skip=frozenset({2, 3, 4}))
    await jobs.mark_cancelled(db_session, job_id)
    page = inputs(await client.get(f"/v0/bulk/{job_id}/download?offset=1&limit=4"))
    assert page == [address(1), address(5), address(6), address(7)]


async def test_a_csv_job_pages_with_its_cells(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    job_id = await finished(db_session, 6)
    await jobs.add_rows(db_session, job_id, count=0, columns=["name"])
    db_session.add_all(BulkRow(job_id=job_id, position=p, cells=[f"n{p}"]) for p in range(6))
    await db_session.flush()

    response = await client.get(f"/v0/bulk/{job_id}/download?offset=4&limit=10")
    assert response.status_code == 200, response.text
    got = response.json()["results"]
    assert [(r["row"], r["input"]) for r in got] == [
        ({"name": "n4"}, address(4)),
        ({"name": "n5"}, address(5)),
    ]
    as_csv = await client.get(f"/v0/bulk/{job_id}/download?format=csv&offset=3&limit=2")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0][0] == "name"
    assert [row[0] for row in rows[1:]] == ["n3", "n4"]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=1000001", "limit"),
        ("limit=", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("offset=2147483648", "offset"),
        ("offset=99999999999999999999999", "offset"),
    ],
)
@pytest.mark.parametrize("route", ["/v0/bulk/{}/download", "/v1/bulk/{}/results"])
async def test_bad_paging_is_a_400(
    client: httpx.AsyncClient, job_id: int, route: str, query: str, says: str
) -> None:
    assert says in error(await client.get(f"{route.format(job_id)}?{query}"), 400)


async def test_a_deep_page_reads_by_position_not_offset(
    db_session: AsyncSession, job_id: int
) -> None:
    """The page's query seeks on the primary key: its plan has no OFFSET step, and its index
    condition names the starting position."""
    await db_session.execute(text("SET LOCAL enable_seqscan = off"))
    statement = results.paged(  # the one place pages are built
        select(cast(BulkResult.output, Text))
        .where(BulkResult.job_id == job_id)
        .order_by(BulkResult.position),
        start=100,
        limit=5,
    )
    compiled = statement.compile(compile_kwargs={"literal_binds": True})
    plan = "\n".join(row[0] for row in await db_session.execute(text(f"EXPLAIN {compiled}")))
    assert "OFFSET" not in str(compiled).upper()
    assert "Index Cond" in plan, plan
    assert '"position" >= 100' in plan, plan


# --- v1


async def test_v1_round_trip(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    created = await client.post(
        "/v1/bulk",
        json={
            "input": ["a@x.test", "b@x.test"],
            "hello_name": "probe.test",
            "webhook": {
                "on_each_email": {
                    "url": "https://hooks.test/row",
                    "headers": {"Authorization": "Bearer x"},
                    "extra": {"list": 7},
                },
                "on_complete": {"url": "http://hooks.test/done"},
            },
        },
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == {"job_id", "job_token"}
    job_id = body["job_id"]

    status = await client.get(f"/v1/bulk/{job_id}")
    assert status.status_code == 200, status.text
    assert status.json() == (await client.get(f"/v0/bulk/{job_id}")).json()
    assert status.json()["total_records"] == 2
    assert status.json()["job_status"] == "running"
    by_token = await client.get(f"/v1/bulk/{body['job_token']}")
    assert by_token.json()["job_id"] == job_id

    running = await client.get(f"/v1/bulk/{job_id}/results")
    assert error(running, 400) == f"Job {job_id} is still running, please try again later"

    stored = await db_session.execute(
        text("SELECT options, webhook FROM bulk_jobs WHERE id = :id"), {"id": job_id}
    )
    options, webhook = stored.one()
    assert options["hello_name"] == "probe.test"
    assert webhook["on_each_email"]["url"] == "https://hooks.test/row"
    assert webhook["on_complete"]["url"] == "http://hooks.test/done"


async def test_v1_results_default_to_50_for_json(client: httpx.AsyncClient, job_id: int) -> None:
    assert inputs(await client.get(f"/v1/bulk/{job_id}/results")) == [address(p) for p in range(50)]
    assert inputs(await client.get(f"/v1/bulk/{job_id}/results?format=json&offset=100")) == [
        address(p) for p in range(100, ROWS)
    ]
    assert inputs(await client.get(f"/v1/bulk/{job_id}/results?limit=2&offset=3")) == [
        address(3),
        address(4),
    ]


async def test_v1_csv_has_no_default_limit(client: httpx.AsyncClient, job_id: int) -> None:
    whole = await client.get(f"/v1/bulk/{job_id}/results?format=csv")
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(whole.text)))) == ROWS
    page = await client.get(f"/v1/bulk/{job_id}/results?format=csv&limit=4&offset=116")
    assert [r["input"] for r in csv.DictReader(io.StringIO(page.text))] == [
        address(p) for p in range(116, 120)
    ]


async def test_v1_check_email_is_v0s(client: httpx.AsyncClient) -> None:
    v1 = await client.post("/v1/check_email", json={"to_email": "not an address"})
    assert v1.status_code == 200, v1.text
    assert v1.json()["is_reachable"] == "invalid"
    assert (
        v1.json()["syntax"]
        == (await client.post("/v0/check_email", json={"to_email": "not an address"})).json()[
            "syntax"
        ]
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": "a@x.test"}, "input"),
        ({"input": [5]}, "input[0]"),
        ({"input": ["a@x.test", "a" * 321]}, "input[1]"),
        ({"input": ["a\u0000@x.test"]}, "input[0]"),
        ({"input": ["a@x.test"], "hello_name": "a b"}, "hello_name"),
        ({"input": ["a@x.test"], "webhook": "https://x.test"}, "webhook"),
        ({"input": ["a@x.test"], "webhook": {"on_each_email": {}}}, "url"),
        ({"input": ["a@x.test"], "webhook": {"on_each_email": {"url": "ftp://x.test"}}}, "http"),
        ({"input": ["a@x.test"], "webhook": {"on_each_email": {"url": "http://"}}}, "host"),
        (
            {"input": ["a@x.test"], "webhook": {"on_complete": {"url": "http://x.test:99999"}}},
            "url",
        ),
        (
            {
                "input": ["a@x.test"],
                "webhook": {"on_each_email": {"url": "http://x.test", "headers": {"X": "a\r\nb"}}},
            },
            "printable",
        ),
        (
            {
                "input": ["a@x.test"],
                "webhook": {"on_each_email": {"url": "http://x.test", "headers": {"A B": "x"}}},
            },
            "header name",
        ),
        (
            {
                "input": ["a@x.test"],
                "webhook": {"on_each_email": {"url": "http://x.test", "headers": {"X": 5}}},
            },
            "headers",
        ),
        (
            {
                "input": ["a@x.test"],
                "webhook": {
                    "on_each_email": {"url": "http://x.test", "headers": {"webhook-id": "1"}}
                },
            },
            "set by the delivery",
        ),
        ({"input": ["a@x.test"], "webhook": {"on_evil": {"url": "http://x.test"}}}, "on_evil"),
    ],
)
async def test_v1_bad_bodies(client: httpx.AsyncClient, body: dict[str, Any], says: str) -> None:
    assert says in error(await client.post("/v1/bulk", json=body), 400)


async def test_v1_too_many_emails(client: httpx.AsyncClient) -> None:
    too_many = {"input": [address(p) for p in range(201)]}
    assert "200" in error(await client.post("/v1/bulk", json=too_many), 413)


async def test_v1_unknown_job(client: httpx.AsyncClient) -> None:
    error(await client.get("/v1/bulk/987654321"), 404)
    error(await client.get("/v1/bulk/987654321/results"), 404)
    error(await client.get("/v1/bulk/01/results"), 400)


# --- the job list


async def test_job_list_newest_first(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    ids = [await finished(db_session, n) for n in (1, 2, 3)]
    listed = await client.get("/v0/bulk", params={"limit": 3})
    assert listed.status_code == 200, listed.text
    got = listed.json()["jobs"]
    assert [j["job_id"] for j in got] == ids[::-1]
    assert got[0] == (await client.get(f"/v0/bulk/{ids[2]}")).json()
    second = await client.get("/v0/bulk", params={"limit": 2, "offset": 1})
    assert [j["job_id"] for j in second.json()["jobs"]] == [ids[1], ids[0]]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "offset=-1"])
async def test_job_list_bad_paging(client: httpx.AsyncClient, query: str) -> None:
    error(await client.get(f"/v0/bulk?{query}"), 400)


async def test_job_list_is_off_for_tenants(tenant_client: httpx.AsyncClient) -> None:
    assert "MXPROBE_REQUIRE_JOB_TOKEN" in error(await tenant_client.get("/v0/bulk"), 404)


# --- the document


async def test_every_new_route_is_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/v0/bulk"]) == {"get", "post"}
    for path, method in [
        ("/v1/check_email", "post"),
        ("/v1/bulk", "post"),
        ("/v1/bulk/{job_id}", "get"),
        ("/v1/bulk/{job_id}/results", "get"),
    ]:
        assert "400" in paths[path][method]["responses"], path
    results_doc = paths["/v1/bulk/{job_id}/results"]["get"]
    assert set(results_doc["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert {p["name"] for p in results_doc["parameters"]} >= {"job_id", "format", "limit", "offset"}
    assert "409" not in results_doc["responses"]
