"""What a hostile or careless client sends, to `mxprobe serve` as shipped: every route, malformed
JSON, wrong types, huge and deep bodies, NUL, lone surrogates, CR/LF in every field, bad ids,
formats and proxies. Each gets its status and a `{"error": "..."}` body; none gets a 5xx; the
service answers normally afterwards; nothing reaches a mail server's wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.services import serving

MAX_EMAILS = 50
MAX_BYTES = 1_000_000  # a bulk body: more than 100,000 `[`, less than 200,000 addresses


@dataclass(frozen=True)
class Bad:
    """One request and the answer it must get."""

    method: str
    path: str
    body: bytes | None = None
    status: int = 400
    says: str = ""  # a fragment of the error message
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def j(value: object) -> bytes:
    return json.dumps(value).encode()


def raw(text: str) -> bytes:
    """A JSON text written by hand (escapes such as a lone surrogate stay as written)."""
    return text.encode()


CHECK = "/v0/check_email"
BULK = "/v0/bulk"
OK_BULK = {"input_type": "array", "input": ["alice@normal.test"]}
CHECK_V1 = "/v1/check_email"
BULK_V1 = "/v1/bulk"
OK_V1 = {"input": ["alice@normal.test"]}
HOOK = {"url": "https://hooks.test/row"}
LONG_LOCAL = "a" * 310 + "@normal.test"  # 322 characters
DEEP = b"[" * 100_000 + b"]" * 100_000

CASES: dict[str, Bad] = {
    # --- POST /v0/check_email: the body as a whole
    "check: malformed json": Bad("POST", CHECK, b"{", says="not valid JSON"),
    "check: truncated json": Bad("POST", CHECK, b'{"to_email": "a@b.test"', says="JSON"),
    "check: empty body": Bad("POST", CHECK, b""),
    "check: array body": Bad("POST", CHECK, j([])),
    "check: string body": Bad("POST", CHECK, j("a@b.test")),
    "check: null body": Bad("POST", CHECK, b"null"),
    "check: number body": Bad("POST", CHECK, b"1e999"),
    "check: deep nesting": Bad("POST", CHECK, DEEP, status=413),
    "check: deep but small": Bad("POST", CHECK, b"[" * 5000 + b"]" * 5000),
    "check: huge body": Bad("POST", CHECK, j({"to_email": "a" * 200_000}), status=413),
    "check: text/plain": Bad(
        "POST", CHECK, b"to_email=a@b.test", headers={"content-type": "text/plain"}
    ),
    "check: invalid utf-8": Bad("POST", CHECK, b'{"to_email": "\xff\xfe@x.test"}'),
    # --- to_email
    "check: to_email missing": Bad("POST", CHECK, j({}), says="to_email"),
    "check: to_email null": Bad("POST", CHECK, j({"to_email": None}), says="to_email"),
    "check: to_email number": Bad("POST", CHECK, j({"to_email": 5}), says="to_email"),
    "check: to_email list": Bad("POST", CHECK, j({"to_email": ["a@b.test"]}), says="to_email"),
    "check: to_email object": Bad("POST", CHECK, j({"to_email": {"a": 1}}), says="to_email"),
    "check: to_email empty": Bad("POST", CHECK, j({"to_email": ""}), says="to_email"),
    "check: to_email over 320": Bad("POST", CHECK, j({"to_email": LONG_LOCAL}), says="to_email"),
    "check: to_email surrogate": Bad(
        "POST", CHECK, raw('{"to_email": "\\ud800abc@example.com"}'), says="to_email"
    ),
    "check: to_email NUL": Bad("POST", CHECK, raw('{"to_email": "a\\u0000b@x.test"}')),
    # --- the other fields
    "check: from_email CRLF": Bad(
        "POST", CHECK, j({"to_email": "a@b.test", "from_email": "x@y.test\r\nDATA"}), says="from"
    ),
    "check: from_email surrogate": Bad(
        "POST", CHECK, raw('{"to_email": "a@b.test", "from_email": "\\udfffx@y.test"}')
    ),
    "check: from_email number": Bad("POST", CHECK, j({"to_email": "a@b.test", "from_email": 1})),
    "check: hello_name CRLF": Bad(
        "POST", CHECK, j({"to_email": "a@b.test", "hello_name": "h\r\nRSET"}), says="hello_name"
    ),
    "check: hello_name too long": Bad(
        "POST", CHECK, j({"to_email": "a@b.test", "hello_name": "h" * 1000}), says="hello_name"
    ),
    "check: hello_name NUL": Bad(
        "POST", CHECK, raw('{"to_email": "a@b.test", "hello_name": "h\\u0000"}')
    ),
    "check: smtp_port zero": Bad("POST", CHECK, j({"to_email": "a@b.test", "smtp_port": 0})),
    "check: smtp_port too big": Bad("POST", CHECK, j({"to_email": "a@b.test", "smtp_port": 70000})),
    "check: smtp_port float": Bad("POST", CHECK, j({"to_email": "a@b.test", "smtp_port": 25.5})),
    "check: smtp_ports empty": Bad("POST", CHECK, j({"to_email": "a@b.test", "smtp_ports": []})),
    "check: smtp_ports eleven": Bad(
        "POST", CHECK, j({"to_email": "a@b.test", "smtp_ports": [25] * 11})
    ),
    "check: free-form proxy": Bad(
        "POST",
        CHECK,
        j({"to_email": "a@b.test", "proxy": {"host": "127.0.0.1", "port": 19050}}),
        says="proxy",
    ),
    "check: metadata proxy": Bad(
        "POST",
        CHECK,
        j({"to_email": "a@b.test", "proxy": {"host": "169.254.169.254", "port": 1080}}),
        says="proxy",
    ),
    "check: unknown proxy name": Bad(
        "POST", CHECK, j({"to_email": "a@b.test", "proxy": "nowhere"}), says="proxy"
    ),
    "check: proxy CRLF host": Bad(
        "POST",
        CHECK,
        j({"to_email": "a@b.test", "proxy": {"host": "h\r\nDATA", "port": 1080}}),
        says="proxy",
    ),
    "check: proxy number": Bad("POST", CHECK, j({"to_email": "a@b.test", "proxy": 5})),
    "check: wrong method": Bad("GET", CHECK, status=405),
    # --- POST /v0/bulk
    "bulk: malformed json": Bad("POST", BULK, b'{"input_type": "array", "input": [', says="JSON"),
    "bulk: empty body": Bad("POST", BULK, b""),
    "bulk: array body": Bad("POST", BULK, j(["a@b.test"])),
    "bulk: deep nesting": Bad("POST", BULK, b'{"input_type": "array", "input": ' + DEEP + b"}"),
    "bulk: input_type missing": Bad("POST", BULK, j({"input": ["a@b.test"]}), says="input_type"),
    "bulk: input_type number": Bad(
        "POST", BULK, j({"input_type": 5, "input": ["a@b.test"]}), says="input_type"
    ),
    "bulk: input_type infinite": Bad(
        "POST", BULK, raw('{"input_type": 1e999, "input": ["a@b.test"]}'), says="input_type"
    ),
    "bulk: input_type unknown": Bad(
        "POST", BULK, j({"input_type": "jsonl", "input": ["a@b.test"]}), says="input_type"
    ),
    "bulk: input missing": Bad("POST", BULK, j({"input_type": "array"}), says="input"),
    "bulk: input string": Bad(
        "POST", BULK, j({"input_type": "array", "input": "a@b.test"}), says="input"
    ),
    "bulk: input object": Bad(
        "POST", BULK, j({"input_type": "array", "input": {"a": 1}}), says="input"
    ),
    "bulk: input empty": Bad("POST", BULK, j({"input_type": "array", "input": []}), says="input"),
    "bulk: input number item": Bad(
        "POST", BULK, j({"input_type": "array", "input": ["a@b.test", 5]}), says="input"
    ),
    "bulk: input null item": Bad(
        "POST", BULK, j({"input_type": "array", "input": [None]}), says="input"
    ),
    "bulk: input nested list": Bad(
        "POST", BULK, j({"input_type": "array", "input": [["a@b.test"]]}), says="input"
    ),
    "bulk: input NUL": Bad(
        "POST", BULK, raw('{"input_type": "array", "input": ["a\\u0000@b.test"]}'), says="input"
    ),
    "bulk: input surrogate": Bad(
        "POST", BULK, raw('{"input_type": "array", "input": ["\\ud800@b.test"]}'), says="input"
    ),
    "bulk: input over 320": Bad(
        "POST", BULK, j({"input_type": "array", "input": ["a@b.test", LONG_LOCAL]}), says="input"
    ),
    "bulk: too many emails": Bad(
        "POST",
        BULK,
        j({"input_type": "array", "input": [f"u{i}@b.test" for i in range(MAX_EMAILS + 1)]}),
        status=413,
        says=str(MAX_EMAILS),
    ),
    "bulk: huge body": Bad(
        "POST", BULK, j({"input_type": "array", "input": ["a@b.test"] * 200_000}), status=413
    ),
    "bulk: from_email CRLF": Bad(
        "POST", BULK, j({**OK_BULK, "from_email": "x@y.test\r\nDATA"}), says="from_email"
    ),
    "bulk: hello_name surrogate": Bad(
        "POST",
        BULK,
        raw('{"input_type": "array", "input": ["a@b.test"], "hello_name": "\\ud800"}'),
        says="hello_name",
    ),
    "bulk: smtp_ports strings": Bad("POST", BULK, j({**OK_BULK, "smtp_ports": ["x"]})),
    "bulk: free-form proxy": Bad(
        "POST", BULK, j({**OK_BULK, "proxy": {"host": "10.0.0.1", "port": 1080}}), says="proxy"
    ),
    "bulk: proxy bad port": Bad(
        "POST", BULK, j({**OK_BULK, "proxy": {"host": "proxy.test", "port": "99999"}})
    ),
    "bulk: unknown proxy name": Bad("POST", BULK, j({**OK_BULK, "proxy": "eu"}), says="proxy"),
    "bulk: wrong method": Bad("PUT", BULK, j(OK_BULK), status=405),
    # --- job ids, on every route that takes one
    **{
        f"{verb} {suffix or 'status'}: id {name}": Bad(verb, f"/v0/bulk/{bad}{suffix}", status=400)
        for verb, suffix in [
            ("GET", ""),
            ("DELETE", ""),
            ("GET", "/download"),
            ("GET", "/results"),
        ]
        for name, bad in [
            ("plus sign", "+1"),
            ("leading zero", "01"),
            ("leading space", "%201"),
            ("zero", "0"),
            ("negative", "-1"),
            ("decimal", "1.0"),
            ("over 2^63", "9" * 20),
            ("NUL", "1%00"),
            ("arabic digit", "%D9%A1"),
        ]
    },
    "status: unknown id": Bad("GET", "/v0/bulk/9223372036854775807", status=404),
    "status: unknown token": Bad("GET", "/v0/bulk/" + "A" * 32, status=404),
    "cancel: unknown id": Bad("DELETE", "/v0/bulk/987654321", status=404),
    "download: unknown id": Bad("GET", "/v0/bulk/987654321/download", status=404),
    "result: unknown id": Bad("GET", "/v0/bulk/987654321/result", status=404),
    "download: format xml": Bad("GET", "/v0/bulk/1/download?format=xml", says="format"),
    "download: format empty": Bad("GET", "/v0/bulk/1/download?format=", says="format"),
    "download: format twice": Bad("GET", "/v0/bulk/1/download?format=csv&format=%00"),
    # --- v1: Reacher's current API
    "v1 check: malformed json": Bad("POST", CHECK_V1, b"{", says="not valid JSON"),
    "v1 check: to_email missing": Bad("POST", CHECK_V1, j({}), says="to_email"),
    "v1 check: huge body": Bad("POST", CHECK_V1, j({"to_email": "a" * 200_000}), status=413),
    "v1 bulk: malformed json": Bad("POST", BULK_V1, b'{"input": [', says="JSON"),
    "v1 bulk: empty body": Bad("POST", BULK_V1, b""),
    "v1 bulk: array body": Bad("POST", BULK_V1, j(["a@b.test"])),
    "v1 bulk: input missing": Bad("POST", BULK_V1, j({}), says="input"),
    "v1 bulk: input string": Bad("POST", BULK_V1, j({"input": "a@b.test"}), says="input"),
    "v1 bulk: input empty": Bad("POST", BULK_V1, j({"input": []}), says="input"),
    "v1 bulk: input number item": Bad("POST", BULK_V1, j({"input": [5]}), says="input[0]"),
    "v1 bulk: input NUL": Bad("POST", BULK_V1, raw('{"input": ["a\\u0000@b.test"]}'), says="input"),
    "v1 bulk: input surrogate": Bad(
        "POST", BULK_V1, raw('{"input": ["\\ud800@b.test"]}'), says="input"
    ),
    "v1 bulk: too many emails": Bad(
        "POST",
        BULK_V1,
        j({"input": [f"u{i}@b.test" for i in range(MAX_EMAILS + 1)]}),
        status=413,
        says=str(MAX_EMAILS),
    ),
    "v1 bulk: huge body": Bad("POST", BULK_V1, j({"input": ["a@b.test"] * 200_000}), status=413),
    "v1 bulk: from_email CRLF": Bad(
        "POST", BULK_V1, j({**OK_V1, "from_email": "x@y.test\r\nDATA"}), says="from_email"
    ),
    "v1 bulk: webhook string": Bad(
        "POST", BULK_V1, j({**OK_V1, "webhook": "https://h.test"}), says="webhook"
    ),
    "v1 bulk: webhook no url": Bad(
        "POST", BULK_V1, j({**OK_V1, "webhook": {"on_each_email": {}}}), says="url"
    ),
    "v1 bulk: webhook file url": Bad(
        "POST",
        BULK_V1,
        j({**OK_V1, "webhook": {"on_complete": {"url": "file:///etc/passwd"}}}),
        says="http",
    ),
    "v1 bulk: webhook header CRLF": Bad(
        "POST",
        BULK_V1,
        j({**OK_V1, "webhook": {"on_each_email": {**HOOK, "headers": {"X": "a\r\nHost: x"}}}}),
        says="printable",
    ),
    "v1 bulk: webhook header name": Bad(
        "POST",
        BULK_V1,
        j({**OK_V1, "webhook": {"on_each_email": {**HOOK, "headers": {"a:b": "x"}}}}),
        says="header name",
    ),
    "v1 bulk: webhook unknown kind": Bad(
        "POST", BULK_V1, j({**OK_V1, "webhook": {"on_evil": HOOK}}), says="on_evil"
    ),
    **{
        f"v1 {suffix or 'status'}: id {name}": Bad("GET", f"/v1/bulk/{bad}{suffix}", status=400)
        for suffix in ("", "/results")
        for name, bad in [("leading zero", "01"), ("negative", "-1"), ("over 2^63", "9" * 20)]
    },
    "v1 status: unknown id": Bad("GET", "/v1/bulk/987654321", status=404),
    "v1 results: unknown id": Bad("GET", "/v1/bulk/987654321/results", status=404),
    "v1 results: format xml": Bad("GET", "/v1/bulk/1/results?format=xml", says="format"),
    # --- paging, v0 and v1, and the job list
    **{
        f"{where}: {name}": Bad("GET", f"{path}?{query}", says=says)
        for where, path in [
            ("download", "/v0/bulk/1/download"),
            ("results", "/v0/bulk/1/results"),
            ("v1 results", "/v1/bulk/1/results"),
            ("list", "/v0/bulk"),
        ]
        for name, query, says in [
            ("limit 0", "limit=0", "limit"),
            ("limit negative", "limit=-5", "limit"),
            ("limit text", "limit=ten", "limit"),
            ("limit decimal", "limit=1.5", "limit"),
            ("limit huge", "limit=99999999999999999999", "limit"),
            ("limit NUL", "limit=1%00", "limit"),
            ("offset negative", "offset=-1", "offset"),
            ("offset text", "offset=x", "offset"),
            ("offset huge", "offset=99999999999999999999", "offset"),
        ]
    },
    "unknown route": Bad("GET", "/v0/nothing", status=404),
    "unknown version": Bad("POST", "/v2/check_email", j({"to_email": "a@b.test"}), status=404),
}


@pytest.fixture(scope="module")
def served(
    database_url: str,
    template_database: str,
    session_world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    env = {
        **world_env(session_world),
        "MXPROBE_BULK_MAX_EMAILS": str(MAX_EMAILS),
        "MXPROBE_BULK_MAX_BYTES": str(MAX_BYTES),
    }
    logs = tmp_path_factory.mktemp("bad-input")
    with serving(database_url, template_database, env=env, logs=logs) as (service, base):
        yield base
        assert "Traceback" not in service.output(), service.output()


@pytest.fixture(scope="module")
def client(served: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served, timeout=30) as http:
        yield http


def test_the_suite_is_big_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_bad_request_gets_a_clear_error(client: httpx.Client, world: World, case: Bad) -> None:
    response = client.request(case.method, case.path, content=case.body, headers=case.headers)

    assert response.status_code == case.status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert body["error"].strip()
    assert case.says.lower() in body["error"].lower(), body["error"]
    # The same connection, or a new one, is answered normally afterwards.
    assert client.get("/healthz").status_code == 200
    # Refused before the engine: no mail server heard of it.
    assert sum(recorder.connections for recorder in world.recorders.values()) == 0


def test_after_all_that_a_check_and_a_job_still_work(client: httpx.Client) -> None:
    checked = client.post(CHECK, json={"to_email": "alice@normal.test"})
    assert checked.status_code == 200, checked.text
    assert checked.json()["is_reachable"] == "safe"
    created = client.post(BULK, json=OK_BULK)
    assert created.status_code == 200, created.text
