"""The bulk API without a worker: request validation, error shapes, status, cancel, downloads of
a job still running. In-process, one rolled-back transaction per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import queue
from app.settings import Settings
from tests.fixtures.api import in_process_api

MAX_EMAILS = 5


@pytest.fixture
async def client(
    shared_database_url: str, api_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api(
        Settings(database_url=shared_database_url, bulk_max_emails=MAX_EMAILS),
        sessions=api_sessions,
    ) as http:
        yield http


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    assert body["error"]
    return str(body["error"])


async def tasks_of(sessions: async_sessionmaker[AsyncSession], job_id: int) -> list[Any]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT args FROM procrastinate_jobs WHERE task_name = :task AND status = 'todo'"
                " AND args @> jsonb_build_object('job_id', CAST(:job_id AS bigint)) ORDER BY id"
            ),
            {"task": queue.VERIFY_TASK, "job_id": job_id},
        )
        return [row[0] for row in rows]


VALID = {"input_type": "array", "input": ["alice@normal.test"]}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"input": ["a@b.test"]}, "input_type field is required"),
        ({"input_type": 5, "input": ["a@b.test"]}, "input_type"),
        ({"input_type": "remote_url", "input": ["https://x.test/l.csv"]}, "a URL"),
        ({"input_type": "remote_url", "input": "file:///etc/passwd"}, "http"),
        ({"input_type": "csv", "input": ["a@b.test"]}, "text of a list"),
        ({"input_type": "csv", "input": "  "}, "text of a list"),
        ({"input_type": "jsonl", "input": ["a@b.test"]}, "unknown input_type"),
        ({"input_type": "array"}, "input field is required"),
        ({"input_type": "array", "input": None}, "input field is required"),
        ({"input_type": "array", "input": "a@b.test"}, "array"),
        ({"input_type": "array", "input": {"a": 1}}, "array"),
        ({"input_type": "array", "input": []}, "at least one"),
        ({"input_type": "array", "input": ["a@b.test", 5]}, "input[1]"),
        ({"input_type": "array", "input": [None]}, "input[0]"),
        ({"input_type": "array", "input": [["a@b.test"]]}, "input[0]"),
        ({"input_type": "array", "input": ["a\u0000b@x.test"]}, "NUL"),
        ({**VALID, "proxy": {"host": "", "port": 1080}}, "proxy"),
        ({**VALID, "proxy": {"host": "127.0.0.1", "port": "99999"}}, "proxy"),
        ({**VALID, "proxy": {"host": "127.0.0.1", "port": 0}}, "proxy"),
        ({**VALID, "proxy": {"host": "127.0.0.1"}}, "proxy"),
        ({**VALID, "proxy": {"host": "127.0.0.1", "port": 1080, "x": 1}}, "proxy"),
        ({**VALID, "proxy": "socks5://127.0.0.1:1080"}, "proxy"),
        ({**VALID, "proxy": {"host": "h\r\nDATA", "port": 1080}}, "proxy"),
        ({**VALID, "smtp_ports": []}, "smtp_ports"),
        ({**VALID, "smtp_ports": [0]}, "smtp_ports"),
        ({**VALID, "smtp_ports": ["25"]}, "smtp_ports"),
        ({**VALID, "smtp_ports": 25}, "smtp_ports"),
        ({**VALID, "hello_name": "a b"}, "hello_name"),
        ({**VALID, "from_email": "a@b.test\r\nRCPT TO:<x@y.test>"}, "from_email"),
        ({**VALID, "from_email": 7}, "from_email"),
    ],
)
async def test_bad_requests_get_400_and_an_error(
    client: httpx.AsyncClient, body: Any, says: str
) -> None:
    response = await client.post("/v0/bulk", json=body)

    assert says in assert_error(response, 400)


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"input_type": "array", "input": ["a@b.test"', {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
        (b"[]", {"content-type": "application/json"}),
        (b'"array"', {"content-type": "application/json"}),
        (b"null", {"content-type": "application/json"}),
        (
            b'{"input_type": "array", "input": ["\\ud800@x.test"]}',
            {"content-type": "application/json"},
        ),
        (
            b'{"input_type": "array", "input": ["a@b.test"], "hello_name": "\\udfff"}',
            {"content-type": "application/json"},
        ),
        (b"\xff\xfe", {"content-type": "application/json"}),
        (b"input_type=array", {"content-type": "application/x-www-form-urlencoded"}),
        (b'{"input_type": "array", "input": ["a@b.test"]}', {"content-type": "text/plain"}),
    ],
)
async def test_malformed_bodies_get_400_and_an_error(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
) -> None:
    response = await client.post("/v0/bulk", content=content, headers=headers)

    assert_error(response, 400)


async def test_too_many_emails_get_413(client: httpx.AsyncClient) -> None:
    emails = [f"u{i}@normal.test" for i in range(MAX_EMAILS + 1)]

    response = await client.post("/v0/bulk", json={"input_type": "array", "input": emails})

    assert str(MAX_EMAILS) in assert_error(response, 413)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v0/bulk/123456", 404),
        ("DELETE", "/v0/bulk/123456", 404),
        ("GET", "/v0/bulk/123456/download", 404),
        ("GET", "/v0/bulk/123456/result", 404),
        ("GET", "/v0/bulk/123456/results?format=csv", 404),
        ("GET", "/v0/bulk/abc", 400),
        ("GET", "/v0/bulk/0", 400),
        ("GET", "/v0/bulk/-1", 400),
        ("GET", "/v0/bulk/99999999999999999999", 400),
        ("GET", "/v0/bulk/1.5/download", 400),
        ("PUT", "/v0/bulk/1", 405),
        ("PUT", "/v0/bulk", 405),
        ("GET", "/v0/bulk/1/nope", 404),
    ],
)
async def test_unknown_jobs_and_bad_paths(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)

    assert_error(response, status)


async def test_submit_creates_the_job_and_one_task_per_row(
    client: httpx.AsyncClient, api_sessions: async_sessionmaker[AsyncSession]
) -> None:
    emails = ["alice@normal.test", "bob@normal.test", "alice@normal.test"]

    response = await client.post(
        "/v0/bulk",
        json={
            "input_type": "array",
            "input": emails,
            "hello_name": "probe.test",
            "from_email": "me@probe.test",
            "smtp_ports": [25, 587],
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["job_id", "job_token"]
    tasks = await tasks_of(api_sessions, body["job_id"])
    assert [(t["position"], t["email"]) for t in tasks] == list(enumerate(emails))


async def test_status_of_a_running_job_has_exactly_the_specs_fields(
    client: httpx.AsyncClient,
) -> None:
    job_id = (await client.post("/v0/bulk", json=VALID)).json()["job_id"]

    response = await client.get(f"/v0/bulk/{job_id}")

    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "job_id",
        "created_at",
        "total_records",
        "total_processed",
        "summary",
        "job_status",
    ]
    assert body["job_id"] == job_id
    assert body["created_at"].endswith("Z")
    assert body["total_records"] == 1
    assert body["total_processed"] == 0
    assert body["summary"] == {
        "total_safe": 0,
        "total_invalid": 0,
        "total_risky": 0,
        "total_unknown": 0,
    }
    assert body["job_status"] == "running"


@pytest.mark.parametrize("path", ["download", "result", "results", "download?format=csv"])
async def test_a_running_job_cannot_be_downloaded_yet(client: httpx.AsyncClient, path: str) -> None:
    job_id = (await client.post("/v0/bulk", json=VALID)).json()["job_id"]

    response = await client.get(f"/v0/bulk/{job_id}/{path}")

    assert "still running" in assert_error(response, 409)


async def test_bad_format_is_400(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/v0/bulk", json=VALID)).json()["job_id"]

    response = await client.get(f"/v0/bulk/{job_id}/download?format=xml")

    assert "format" in assert_error(response, 400)


async def test_cancel_removes_the_waiting_tasks_and_keeps_the_job(
    client: httpx.AsyncClient, api_sessions: async_sessionmaker[AsyncSession]
) -> None:
    emails = ["a@normal.test", "b@normal.test", "c@normal.test"]
    job_id = (await client.post("/v0/bulk", json={"input_type": "array", "input": emails})).json()[
        "job_id"
    ]

    cancelled = await client.delete(f"/v0/bulk/{job_id}")
    again = await client.delete(f"/v0/bulk/{job_id}")
    status = await client.get(f"/v0/bulk/{job_id}")
    json_download = await client.get(f"/v0/bulk/{job_id}/download")
    csv_download = await client.get(f"/v0/bulk/{job_id}/download?format=csv")

    assert cancelled.status_code == 200
    assert cancelled.json()["job_status"] == "cancelled"
    assert again.json() == cancelled.json()
    assert status.json()["job_status"] == "cancelled"
    assert "finished_at" not in status.json()
    assert await tasks_of(api_sessions, job_id) == []
    assert json_download.status_code == 200
    assert json_download.json() == {"results": []}
    assert csv_download.status_code == 200
    assert csv_download.text.startswith("input,is_reachable,")
    assert csv_download.text.endswith("syntax.error\r\n")
    assert csv_download.text.count("\n") == 1


async def test_the_openapi_document_builds(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/v0/bulk", "/v0/bulk/{job_id}", "/v0/bulk/{job_id}/download"} <= set(paths)
