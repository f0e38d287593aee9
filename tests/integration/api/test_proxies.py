"""The proxy option over HTTP, against real microsocks servers on loopback and a real worker:
named proxies (MXPROBE_PROXIES) for checks and bulk jobs, free-form proxies off by default and
checked when on, credentials SOCKS5 cannot send refused at submit time, and nothing secret in
`bulk_jobs.options` (sealed while the job runs, erased once it has ended)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from app import queue
from app.engine import Resolver, Verifier
from app.settings import Settings
from app.simulator import World
from tests.conftest import world_settings
from tests.fixtures.api import in_process_api
from tests.fixtures.socks import Socks, free_port, microsocks
from tests.integration.api.test_bulk_with_worker import bulk_settings, running_worker, wait_until
from tests.integration.worker.conftest import job_context
from worker import periodic

USER, PASSWORD = "probe", "s3cret-Pa55"
KEY = Fernet.generate_key().decode()
ADDRESSES = ["alice@normal.test", "nobody@normal.test", "alice@full.test"]
VERDICTS = ["safe", "invalid", "risky"]
UNREACHABLE = {"error": {"type": "AsyncSmtpError", "message": "proxy unreachable"}}


FREE_FORM: dict[str, object] = {"allow_request_proxy": True, "allow_private_proxy": True}
"""Settings that let requests name a proxy of their own, on a private address too."""


@pytest.fixture(scope="module")
def socks() -> Iterator[Socks]:
    with microsocks(username=USER, password=PASSWORD) as server:
        yield server


def wrong_password(socks: Socks) -> str:
    return f"socks5://{USER}:wrong@{socks.host}:{socks.port}"


async def check(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/v0/check_email", json={"to_email": "alice@normal.test", **body})


def error_of(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error"}
    return str(body["error"])


def options_row(database_url: str, job_id: int) -> str:
    """`bulk_jobs.options` as PostgreSQL stores it."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT options::text FROM bulk_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


# --- POST /v0/check_email -------------------------------------------------------------------


async def test_a_check_goes_through_the_named_proxy(
    world: World, shared_database_url: str, socks: Socks
) -> None:
    """The proxy "good" has microsocks' credentials and "bad" not: only the first gets an
    answer, so each check went through the proxy it named."""
    settings = world_settings(
        world,
        database_url=shared_database_url,
        proxies={"good": socks.url(), "bad": wrong_password(socks)},
    )
    async with in_process_api(settings) as client:
        good = await check(client, proxy="good")
        bad = await check(client, proxy="bad")
        direct = await check(client)

    assert good.status_code == bad.status_code == direct.status_code == 200
    assert good.json()["is_reachable"] == direct.json()["is_reachable"] == "safe"
    method = good.json()["debug"]["smtp"]["verif_method"]["verif_method"]
    assert method["proxy"] == {"host": socks.host, "port": socks.port}  # no credentials
    assert bad.json()["is_reachable"] == "unknown"
    assert bad.json()["smtp"] == UNREACHABLE


async def test_the_default_proxy_serves_every_check_and_a_name_replaces_it(
    world: World, shared_database_url: str, socks: Socks
) -> None:
    settings = world_settings(
        world,
        database_url=shared_database_url,
        proxy=wrong_password(socks),
        proxies={"good": socks.url()},
    )
    async with in_process_api(settings) as client:
        default = await check(client)
        named = await check(client, proxy="good")

    assert default.json()["smtp"] == UNREACHABLE
    assert named.json()["is_reachable"] == "safe"


async def test_an_unknown_proxy_name_is_a_400(world: World, shared_database_url: str) -> None:
    settings = world_settings(world, database_url=shared_database_url, proxies={})
    async with in_process_api(settings) as client:
        response = await check(client, proxy="eu")

    assert error_of(response) == (
        'proxy "eu" is not one of the server\'s proxies (MXPROBE_PROXIES)'
    )


async def test_free_form_proxies_are_refused_by_default(
    world: World, shared_database_url: str, socks: Socks
) -> None:
    settings = world_settings(world, database_url=shared_database_url)
    async with in_process_api(settings) as client:
        for host in ("127.0.0.1", "169.254.169.254", "proxy.example.com"):
            response = await check(client, proxy={"host": host, "port": socks.port})

            assert "free-form proxies are disabled" in error_of(response)
            assert "MXPROBE_ALLOW_REQUEST_PROXY=true" in error_of(response)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fd00::1", "0.0.0.0"]
)
async def test_a_private_literal_proxy_is_a_400(
    world: World, shared_database_url: str, host: str
) -> None:
    settings = world_settings(world, database_url=shared_database_url, allow_request_proxy=True)
    async with in_process_api(settings) as client:
        response = await check(client, proxy={"host": host, "port": 1080})

    assert error_of(response) == (
        f"proxy.host {host} is not a public address: set MXPROBE_ALLOW_PRIVATE_PROXY=true on "
        "the server to allow private proxies"
    )


async def test_a_proxy_name_resolving_to_loopback_is_refused_when_connecting(
    world: World, shared_database_url: str, socks: Socks
) -> None:
    """`localhost` passes the submit-time check (a name) but resolves to loopback: the
    engine does not connect, and the result says only `proxy unreachable`."""
    settings = world_settings(world, database_url=shared_database_url, allow_request_proxy=True)
    proxy = {"host": "localhost", "port": socks.port, "username": USER, "password": PASSWORD}
    async with in_process_api(settings) as client:
        response = await check(client, proxy=proxy)

    assert response.status_code == 200
    assert response.json()["is_reachable"] == "unknown"
    assert response.json()["smtp"] == UNREACHABLE


async def test_a_free_form_proxy_when_allowed_with_private_addresses(
    world: World, shared_database_url: str, socks: Socks
) -> None:
    settings = world_settings(world, database_url=shared_database_url, **FREE_FORM)
    proxy = {"host": "localhost", "port": str(socks.port), "username": USER}
    async with in_process_api(settings) as client:
        good = await check(client, proxy={**proxy, "password": PASSWORD})
        bad = await check(client, proxy={**proxy, "password": "wrong"})

    assert good.json()["is_reachable"] == "safe"
    assert bad.json()["smtp"] == UNREACHABLE


async def test_closed_http_and_refusing_proxies_read_the_same(
    world: World, shared_database_url: str, socks: Socks
) -> None:
    """Over HTTP too: a client learns nothing of what listens on the port it named."""
    settings = world_settings(world, database_url=shared_database_url, **FREE_FORM)
    async with in_process_api(settings) as client:
        # the API itself is no HTTP server on a port; microsocks with a wrong password is
        # the SOCKS server refusing, and a free port is closed
        closed = await check(client, proxy={"host": "127.0.0.1", "port": free_port()})
        refusing = await check(
            client,
            proxy={"host": "127.0.0.1", "port": socks.port, "username": "x", "password": "y"},
        )

    assert closed.json()["smtp"] == refusing.json()["smtp"] == UNREACHABLE
    assert closed.json()["debug"]["probe"] == refusing.json()["debug"]["probe"]


BAD_CREDENTIALS = [
    ({"username": "us\u00e9r", "password": "p"}, "proxy.username: must be ASCII"),
    ({"username": "u", "password": "p\u20ac"}, "proxy.password: must be ASCII"),
    ({"username": "u" * 256, "password": "p"}, "proxy.username"),
    ({"username": "u", "password": "p" * 256}, "proxy.password"),
    ({"username": "u"}, "username and password go together"),
    ({"password": "p"}, "username and password go together"),
    ({"username": "", "password": "p"}, "proxy.username: must not be empty"),
    ({"username": "u", "password": "p\x00"}, "proxy.password"),
    ({"username": 5, "password": "p"}, "proxy.username"),
]


@pytest.mark.parametrize(("credentials", "says"), BAD_CREDENTIALS)
@pytest.mark.parametrize("route", ["/v0/check_email", "/v0/bulk"])
async def test_credentials_socks5_cannot_send_are_a_400_at_submit(
    world: World,
    fresh_database_url: str,
    route: str,
    credentials: dict[str, Any],
    says: str,
) -> None:
    settings = world_settings(world, database_url=fresh_database_url, **FREE_FORM, secret_key=KEY)
    body: dict[str, Any] = {"proxy": {"host": "proxy.example.com", "port": 1080, **credentials}}
    if route == "/v0/bulk":
        body.update(input_type="array", input=["alice@normal.test"])
    else:
        body.update(to_email="alice@normal.test")
    async with in_process_api(settings) as client:
        response = await client.post(route, json=body)
        alive = await client.get("/healthz")

    assert says in error_of(response)
    assert alive.status_code == 200
    with psycopg.connect(fresh_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM bulk_jobs").fetchone() == (0,)


# --- POST /v0/bulk ---------------------------------------------------------------------------


async def test_a_bulk_job_goes_through_the_named_proxy_and_stores_only_its_name(
    world: World, fresh_database_url: str, socks: Socks
) -> None:
    settings = bulk_settings(
        world,
        fresh_database_url,
        proxies={"good": socks.url(), "bad": wrong_password(socks)},
    )
    async with in_process_api(settings) as client:
        good = (
            await client.post(
                "/v0/bulk", json={"input_type": "array", "input": ADDRESSES, "proxy": "good"}
            )
        ).json()["job_id"]
        bad = (
            await client.post(
                "/v0/bulk", json={"input_type": "array", "input": ADDRESSES, "proxy": "bad"}
            )
        ).json()["job_id"]
        stored = options_row(fresh_database_url, good)
        async with running_worker(settings):
            for job_id in (good, bad):
                await wait_until(client, job_id, done=lambda s: s["job_status"] == "complete")
        through_good = (await client.get(f"/v0/bulk/{good}/download")).json()["results"]
        through_bad = (await client.get(f"/v0/bulk/{bad}/download")).json()["results"]

    assert json.loads(stored) == {"proxy": {"name": "good"}}
    assert [r["is_reachable"] for r in through_good] == VERDICTS
    assert [r["is_reachable"] for r in through_bad] == ["unknown"] * 3
    assert all(r["smtp"] == UNREACHABLE for r in through_bad)


async def test_a_name_the_worker_does_not_know_gives_unknown_rows_not_a_crash_loop(
    world: World, fresh_database_url: str, socks: Socks
) -> None:
    api_settings = bulk_settings(world, fresh_database_url, proxies={"eu": socks.url()})
    worker_settings = bulk_settings(world, fresh_database_url)  # no MXPROBE_PROXIES
    async with in_process_api(api_settings) as client:
        response = await client.post(
            "/v0/bulk", json={"input_type": "array", "input": ADDRESSES, "proxy": "eu"}
        )
        job_id = response.json()["job_id"]
        async with running_worker(worker_settings):
            status = await wait_until(
                client, job_id, done=lambda s: s["job_status"] == "complete", within=10
            )
        rows = (await client.get(f"/v0/bulk/{job_id}/download")).json()["results"]

    assert status["summary"]["total_unknown"] == 3
    expected = {
        "type": "ProxyUnavailable",
        "message": 'proxy "eu" is not configured on this worker (MXPROBE_PROXIES)',
    }
    for row, address in zip(rows, ADDRESSES, strict=True):
        assert row["input"] == address
        assert row["is_reachable"] == "unknown"
        assert row["smtp"] == {"error": expected}
        assert row["mx"] == {"error": expected}
        assert row["syntax"]["is_valid_syntax"] is True  # not a crash's InternalError row


async def test_free_form_credentials_in_a_bulk_job_need_a_secret_key(
    world: World, fresh_database_url: str
) -> None:
    settings = bulk_settings(world, fresh_database_url, allow_request_proxy=True)
    proxy = {"host": "proxy.example.com", "port": 1080, "username": "u", "password": "p"}
    async with in_process_api(settings) as client:
        refused = await client.post(
            "/v0/bulk", json={"input_type": "array", "input": ADDRESSES, "proxy": proxy}
        )
        without = await client.post(
            "/v0/bulk",
            json={
                "input_type": "array",
                "input": ADDRESSES,
                "proxy": {"host": "proxy.example.com", "port": 1080},
            },
        )

    assert "needs MXPROBE_SECRET_KEY" in error_of(refused)
    assert without.status_code == 200
    assert json.loads(options_row(fresh_database_url, without.json()["job_id"])) == {
        "proxy": {"host": "proxy.example.com", "port": 1080}
    }


async def test_free_form_credentials_are_sealed_used_and_erased_once_the_job_ends(
    world: World, fresh_database_url: str, socks: Socks
) -> None:
    settings = bulk_settings(world, fresh_database_url, **FREE_FORM, secret_key=KEY)
    proxy = {"host": "127.0.0.1", "port": socks.port, "username": USER, "password": PASSWORD}
    async with in_process_api(settings) as client:
        job_id = (
            await client.post(
                "/v0/bulk", json={"input_type": "array", "input": ADDRESSES, "proxy": proxy}
            )
        ).json()["job_id"]
        while_running = options_row(fresh_database_url, job_id)
        async with running_worker(settings):
            await wait_until(client, job_id, done=lambda s: s["job_status"] == "complete")
        rows = (await client.get(f"/v0/bulk/{job_id}/download")).json()["results"]
    await forget_proxy_credentials(settings)
    after = options_row(fresh_database_url, job_id)

    assert [r["is_reachable"] for r in rows] == VERDICTS  # the credentials reached microsocks
    assert USER not in while_running
    assert PASSWORD not in while_running
    sealed = json.loads(while_running)["proxy"]
    assert set(sealed) == {"host", "port", "credentials"}
    assert Fernet(KEY).decrypt(sealed["credentials"])  # sealed with the key, not encoded
    assert json.loads(after) == {
        "proxy": {"host": "127.0.0.1", "port": socks.port, "credentials": None}
    }
    assert all(PASSWORD not in json.dumps(r) for r in rows)


async def test_a_cancelled_jobs_credentials_are_erased_at_once(
    world: World, fresh_database_url: str
) -> None:
    settings = bulk_settings(world, fresh_database_url, **FREE_FORM, secret_key=KEY)
    proxy = {"host": "127.0.0.1", "port": 1080, "username": USER, "password": PASSWORD}
    async with in_process_api(settings) as client:
        job_id = (
            await client.post(
                "/v0/bulk", json={"input_type": "array", "input": ADDRESSES, "proxy": proxy}
            )
        ).json()["job_id"]
        await forget_proxy_credentials(settings)
        before = json.loads(options_row(fresh_database_url, job_id))  # running: kept
        assert (await client.delete(f"/v0/bulk/{job_id}")).status_code == 200
    after = json.loads(options_row(fresh_database_url, job_id))  # at once, without a sweep

    assert isinstance(before["proxy"]["credentials"], str)
    assert after["proxy"]["credentials"] is None


async def forget_proxy_credentials(settings: Settings) -> int:
    """The workers' periodic sweep, run once, as procrastinate runs it."""
    verifier = Verifier(settings.probe_config(), resolver=Resolver(settings.dns_config()))
    async with job_context(
        settings,
        verifier,
        task_name=periodic.FORGET_PROXY_CREDENTIALS_TASK,
        queue_name=queue.MAINTENANCE_QUEUE,
    ) as context:
        return await periodic.forget_proxy_credentials(context, timestamp=0)


async def test_the_served_openapi_says_which_proxies_this_server_accepts(
    world: World, shared_database_url: str, socks: Socks
) -> None:
    configured = world_settings(
        world,
        database_url=shared_database_url,
        proxies={"us": socks.url(), "eu": socks.url()},
        allow_request_proxy=True,
    )
    async with in_process_api(world_settings(world, database_url=shared_database_url)) as client:
        default = (await client.get("/openapi.json")).json()["components"]["schemas"]
    async with in_process_api(configured) as client:
        opened = (await client.get("/openapi.json")).json()["components"]["schemas"]

    for body in ("CheckEmailIn", "BulkIn"):
        assert default[body]["properties"]["proxy"]["anyOf"] == [{"type": "null"}]
        assert opened[body]["properties"]["proxy"]["anyOf"] == [
            {
                "type": "string",
                "enum": ["eu", "us"],
                "description": "The name of one of the server's proxies (MXPROBE_PROXIES)",
            },
            {"$ref": "#/components/schemas/ProxyIn"},
            {"type": "null"},
        ]
    assert opened["ProxyIn"]["properties"]["password"]["anyOf"][0]["maxLength"] == 255
