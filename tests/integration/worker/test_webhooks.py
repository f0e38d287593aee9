"""Webhooks end to end: jobs submitted through `app.bulk.submit`, a real worker in-process, a
real HTTP receiver on 127.0.0.1 recording every POST. A database per test."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from standardwebhooks.webhooks import Webhook

from app import bulk, webhooks
from app.api.main import create_app
from app.db.jobs import JobOptions
from app.db.session import make_engine, make_sessionmaker, session_scope
from app.lists.sniff import SNIFF_LINES
from app.settings import Settings
from app.simulator import World
from tests.fixtures.api import in_process_api
from tests.fixtures.bulk import EXPECTED
from tests.fixtures.database import stored_results
from tests.fixtures.http_files import HttpFiles, body, stall
from tests.fixtures.http_files import http_files as http_files
from tests.fixtures.waiting import eventually
from tests.integration.api.test_bulk_with_worker import bulk_settings, running_worker
from worker import deliveries

KEY = b"a test key of 32 bytes, exactly!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes
    status: int
    stored: int | None
    """Rows of the job stored when the call came in (when the receiver was asked to count)."""


@dataclass
class Receiver:
    """Answers 500 to its first `fail_first` calls, then 204, each after `delay` seconds;
    records every call, and how many were in flight at most."""

    fail_first: int = 0
    delay: float = 0.0
    stored_rows: Callable[[], int] | None = None
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def delivered(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.status == 204]


@contextlib.contextmanager
def receiving(state: Receiver) -> Iterator[Receiver]:
    """`state`'s receiver, listening on 127.0.0.1 (its `url` set) until the block ends."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stored = state.stored_rows() if state.stored_rows else None
            time.sleep(state.delay)
            with state.lock:
                status = 500 if len(state.calls) < state.fail_first else 204
                state.calls.append(
                    Call({k.lower(): v for k, v in self.headers.items()}, body, status, stored)
                )
                state.in_flight -= 1
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(Receiver(fail_first=3)) as state:
        yield state


def webhook_settings(world: World, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "allow_private_urls": True,
        "webhook_secret": SECRET,
        "webhook_retry_delay": 0.2,
        "webhook_retry_max_delay": 0.5,
        "webhook_timeout": 2.0,
        **overrides,
    }
    return bulk_settings(world, database_url, **values)


async def submit(settings: Settings, emails: list[str], webhook: dict[str, Any]) -> int:
    assert settings.database_url
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            job = await bulk.submit(
                session,
                emails=emails,
                options=JobOptions(),
                max_emails=100,
                webhook=webhook,
                allow_private_urls=settings.allow_private_urls,
            )
        return job.job_id
    finally:
        await engine.dispose()


async def status_of(settings: Settings, job_id: int) -> dict[str, Any]:
    assert settings.database_url
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            return bulk.status_body(await bulk.status(session, job_id))
    finally:
        await engine.dispose()


def documented_body(settings: Settings, message: str) -> Draft202012Validator:
    """The body of `message` as the served OpenAPI document describes it."""
    document = create_app(settings).openapi()
    body = document["webhooks"][message]["post"]["requestBody"]["content"]["application/json"]
    return Draft202012Validator({**body["schema"], "components": document["components"]})


def independent_signature(call: Call) -> str:
    signed = f"{call.headers['webhook-id']}.{call.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(KEY, signed + call.body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def test_each_row_once_and_completion_once_through_failures(
    world: World, fresh_database_url: str, receiver: Receiver
) -> None:
    settings = webhook_settings(world, fresh_database_url)
    emails = [email for email, _ in EXPECTED]
    job_id = await submit(
        settings,
        emails,
        {
            "on_each_email": {
                "url": receiver.url,
                "headers": {"Authorization": "Bearer x"},
                "extra": {"list": "a"},
            },
            "on_complete": {"url": receiver.url, "extra": [1, 2]},
        },
    )
    async with running_worker(settings):
        await eventually(lambda: len(receiver.delivered()) >= len(emails) + 1, within=60)
        await asyncio.sleep(1.0)  # anything sent twice would arrive meanwhile

        async def counted() -> dict[str, Any]:
            body = await status_of(settings, job_id)
            return dict(body["webhook"])

        deadline = asyncio.get_running_loop().time() + 10
        while (state := await counted())["on_each_email"]["delivered"] < len(emails):
            assert asyncio.get_running_loop().time() < deadline, state
            await asyncio.sleep(0.1)

    assert [c.status for c in receiver.calls[:3]] == [500, 500, 500]
    delivered = receiver.delivered()
    ids = [c.headers["webhook-id"] for c in delivered]
    assert len(ids) == len(set(ids)) == len(emails) + 1  # each message delivered once
    # every failed call was a message later delivered with the same id
    assert {c.headers["webhook-id"] for c in receiver.calls[:3]} <= set(ids)

    webhook = Webhook(SECRET)
    rows, completions = [], []
    for call in receiver.calls:
        payload = webhook.verify(call.body, call.headers)  # raises on a bad signature
        assert call.headers["webhook-signature"] == independent_signature(call)
        assert ("result" in payload) == (call.headers.get("authorization") == "Bearer x")
        (rows if "result" in payload else completions).append((call, payload))
    delivered_rows = [p for c, p in rows if c.status == 204]
    assert sorted(p["result"]["input"] for p in delivered_rows) == sorted(emails)
    assert {p["result"]["input"]: p["result"]["is_reachable"] for p in delivered_rows} == dict(
        EXPECTED
    )
    assert all(p["extra"] == {"list": "a"} for p in delivered_rows)
    done = [p for c, p in completions if c.status == 204]
    assert len(done) == 1
    # and each is what the OpenAPI document's `webhooks` says a receiver gets
    for message, payloads in (("on_each_email", delivered_rows), ("on_complete", done)):
        documented = documented_body(settings, message)
        for payload in payloads:
            documented.validate(payload)
    assert done[0]["job_id"] == job_id
    assert done[0]["job_status"] == "complete"
    assert done[0]["total_processed"] == len(emails)
    assert done[0]["extra"] == [1, 2]

    state = await counted()
    assert state["on_each_email"]["delivered"] == len(emails)
    assert state["on_each_email"]["failing"] == 0
    assert state["on_each_email"]["given_up"] == 0
    assert state["on_complete"]["delivered"] == 1
    assert state["on_complete"]["failing"] == 0


async def test_dead_receiver_given_up_after_the_bound(
    world: World, fresh_database_url: str
) -> None:
    settings = webhook_settings(world, fresh_database_url, webhook_retry_for=1.5)
    dead = "http://127.0.0.1:9/hook"  # discard: nothing listens
    emails = ["alice@normal.test", "nobody@normal.test"]
    job_id = await submit(
        settings, emails, {"on_each_email": {"url": dead}, "on_complete": {"url": dead}}
    )
    async with running_worker(settings):
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            body = await status_of(settings, job_id)
            state = body["webhook"]
            if (
                state["on_each_email"]["given_up"] == len(emails)
                and state["on_complete"]["given_up"] == 1
            ):
                break
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.2)
    assert body["job_status"] == "complete"
    assert state["on_each_email"]["delivered"] == 0
    assert state["on_each_email"]["failing"] == 0
    assert "127.0.0.1:9" in state["on_each_email"]["last_error"]
    assert state["on_complete"]["failing"] == 0


async def test_rows_are_sent_as_they_are_stored_not_after_the_job(
    world: World, fresh_database_url: str
) -> None:
    """A message's task goes ahead of the job's verifications still queued."""
    settings = webhook_settings(world, fresh_database_url)
    emails = [f"user{n}@normal.test" for n in range(60)]
    state = Receiver()
    with receiving(state):
        job_id = await submit(settings, emails, {"on_each_email": {"url": state.url}})
        state.stored_rows = lambda: stored_results(fresh_database_url, job_id)
        async with running_worker(settings, concurrency=4):
            await eventually(lambda: len(state.delivered()) >= len(emails), within=60)

    stored_at_first_call = min(c.stored for c in state.calls if c.stored is not None)
    assert stored_at_first_call <= len(emails) // 2, [c.stored for c in state.calls]


async def test_a_slow_receiver_holds_only_its_share_of_a_worker(
    world: World, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most webhook_concurrency POSTs at once: the job is verified without waiting for the
    receiver, and every message still arrives, once."""
    monkeypatch.setattr(deliveries, "LATER_DELAYS", (0.2, 0.5))  # sent back for less long
    settings = webhook_settings(world, fresh_database_url, webhook_concurrency=1)
    emails = [f"user{n}@normal.test" for n in range(8)]
    state = Receiver(delay=0.3)
    with receiving(state):
        job_id = await submit(
            settings,
            emails,
            {"on_each_email": {"url": state.url}, "on_complete": {"url": state.url}},
        )
        async with running_worker(settings, concurrency=4):
            deadline = asyncio.get_running_loop().time() + 30
            while (body := await status_of(settings, job_id))["job_status"] != "complete":
                assert asyncio.get_running_loop().time() < deadline, body
                await asyncio.sleep(0.05)
            delivered_when_complete = len(state.delivered())
            await eventually(
                lambda: len(state.delivered()) >= len(emails) + 1,
                within=60,
                what="every message",
            )
            await asyncio.sleep(0.5)  # anything sent twice would arrive meanwhile
            status = await status_of(settings, job_id)

    assert delivered_when_complete < len(emails)  # verification did not wait for the receiver
    assert state.max_in_flight == 1
    ids = [c.headers["webhook-id"] for c in state.calls]
    assert len(ids) == len(set(ids)) == len(emails) + 1
    assert status["webhook"]["on_each_email"]["delivered"] == len(emails)
    assert status["webhook"]["on_complete"]["delivered"] == 1


V0_LIST = ["alice@normal.test", "nobody@normal.test", "not an address"]


@pytest.mark.parametrize("how", ["array", "csv", "remote_url", "upload"])
async def test_a_v0_job_of_any_input_carries_webhooks(
    world: World, fresh_database_url: str, http_files: HttpFiles, how: str
) -> None:
    settings = webhook_settings(world, fresh_database_url)
    text = "".join(f"{address}\n" for address in V0_LIST)
    with receiving(Receiver()) as state:
        hooks = {
            "on_each_email": {"url": state.url},
            "on_complete": {"url": state.url, "extra": how},
        }
        async with in_process_api(settings) as client:
            if how == "upload":
                response = await client.post(
                    "/v0/bulk",
                    files={"file": ("list.txt", text.encode())},
                    data={"webhook": json.dumps(hooks)},
                )
            else:
                given: object = {
                    "array": V0_LIST,
                    "csv": text,
                    "remote_url": http_files.serve("/list.txt", body(text.encode())),
                }[how]
                response = await client.post(
                    "/v0/bulk", json={"input_type": how, "input": given, "webhook": hooks}
                )
            assert response.status_code == 200, response.text
            job_id = response.json()["job_id"]
            async with running_worker(settings):
                await eventually(lambda: len(state.delivered()) >= len(V0_LIST) + 1, within=30)
                await asyncio.sleep(0.5)  # anything sent twice would arrive meanwhile

    payloads = [json.loads(call.body) for call in state.calls]
    rows = [p for p in payloads if "result" in p]
    done = [p for p in payloads if "job_status" in p]
    assert sorted(p["result"]["input"] for p in rows) == sorted(V0_LIST)
    assert len(done) == 1
    assert (done[0]["job_id"], done[0]["job_status"], done[0]["extra"]) == (job_id, "complete", how)
    assert done[0]["total_processed"] == len(V0_LIST)


async def test_an_import_that_ends_after_its_last_row_is_counted_announces_its_end(
    world: World, fresh_database_url: str, http_files: HttpFiles
) -> None:
    """The list stalls after its rows: they are verified and counted while the import still
    waits; its end (the read timing out) is what completes the job, and sends on_complete."""
    settings = webhook_settings(world, fresh_database_url, remote_timeout=2.0)
    read = [f"u{n}@normal.test" for n in range(SNIFF_LINES + 10)]
    head = "".join(f"{address}\n" for address in read).encode()
    url = http_files.serve("/stalls.txt", stall(head, declared_length=10 * len(head)))
    with receiving(Receiver()) as state:
        hooks = {"on_complete": {"url": state.url}}
        async with in_process_api(settings) as client:
            response = await client.post(
                "/v0/bulk", json={"input_type": "remote_url", "input": url, "webhook": hooks}
            )
            assert response.status_code == 200, response.text
            async with running_worker(settings):
                await eventually(lambda: len(state.delivered()) >= 1, within=30)
                await asyncio.sleep(0.5)

    assert len(state.calls) == 1
    done = json.loads(state.calls[0].body)
    assert done["job_status"] == "complete"
    assert done["total_records"] == done["total_processed"] == len(read)
    assert "reading the list stopped" in done["error"]


async def test_an_upload_with_a_webhook_that_is_not_json_is_a_400(
    world: World, fresh_database_url: str
) -> None:
    settings = webhook_settings(world, fresh_database_url)
    async with in_process_api(settings) as client:
        not_json = await client.post(
            "/v0/bulk", files={"file": ("l.txt", b"a@b.test\n")}, data={"webhook": "{url"}
        )
        no_url = await client.post(
            "/v0/bulk",
            files={"file": ("l.txt", b"a@b.test\n")},
            data={"webhook": json.dumps({"on_complete": {"headers": {}}})},
        )

    assert not_json.status_code == 400
    assert not_json.json() == {"error": "webhook: the form field must hold JSON"}
    assert no_url.status_code == 400
    assert "webhook.on_complete.url" in no_url.json()["error"]


async def test_a_literal_private_address_is_refused_at_submit(
    world: World, fresh_database_url: str
) -> None:
    settings = webhook_settings(world, fresh_database_url, allow_private_urls=False)
    with pytest.raises(bulk.BadWebhook, match="private"):
        await submit(settings, ["alice@normal.test"], {"on_complete": {"url": "http://10.0.0.1/"}})
    with pytest.raises(bulk.BadWebhook, match="http"):
        await submit(settings, ["alice@normal.test"], {"on_each_email": {"url": "ftp://x.test/"}})


def test_signature_matches_the_standard_webhooks_library() -> None:
    body = json.dumps({"a": 1}).encode()
    headers = webhooks.signed_headers(body, msg_id="msg_1", key=webhooks.signing_key(SECRET))
    assert Webhook(SECRET).verify(body, headers) == {"a": 1}
    raw = webhooks.signed_headers(body, msg_id="msg_1", key=webhooks.signing_key("plain text"))
    assert Webhook(b"plain text").verify(body, raw) == {"a": 1}
