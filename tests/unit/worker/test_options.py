"""A job's stored proxy → the proxy this worker connects through, or why it cannot."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app import sealing
from app.db.jobs import JobOptions, NamedProxy, RequestProxy
from app.engine import ProxyConfig
from app.settings import Settings
from worker import options
from worker.tasks import failed_output

KEY = Fernet.generate_key().decode()
SEALED = RequestProxy(
    host="proxy.test", port=1080, sealed_credentials=sealing.seal(KEY, username="u", password="p")
)


def settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


def test_stored_options_become_the_engines_request() -> None:
    stored = JobOptions(
        from_email="me@x.test", hello_name="x.test", proxy=NamedProxy("eu"), smtp_ports=(587,)
    )

    request = options.check_request(
        stored, "a@b.test", settings=settings(proxies={"eu": "socks5://u:p@10.0.0.5:1080"})
    )

    assert request.to_email == "a@b.test"
    assert (request.from_email, request.hello_name) == ("me@x.test", "x.test")
    assert request.smtp_ports == (587,)
    assert request.proxy == ProxyConfig(
        host="10.0.0.5", port=1080, username="u", password="p", allow_private=True
    )


def test_a_requests_proxy_gets_its_credentials_opened_and_is_checked() -> None:
    allowed = settings(allow_request_proxy=True, secret_key=KEY)
    private_too = settings(allow_request_proxy=True, allow_private_proxy=True, secret_key=KEY)

    assert options.proxy_config(SEALED, settings=allowed) == ProxyConfig(
        host="proxy.test", port=1080, username="u", password="p", allow_private=False
    )
    proxy = options.proxy_config(SEALED, settings=private_too)
    assert proxy is not None
    assert proxy.allow_private is True
    assert options.proxy_config(
        RequestProxy(host="proxy.test", port=1080), settings=settings(allow_request_proxy=True)
    ) == ProxyConfig(host="proxy.test", port=1080)


@pytest.mark.parametrize(
    ("stored", "values", "says"),
    [
        (NamedProxy("eu"), {}, 'proxy "eu" is not configured on this worker (MXPROBE_PROXIES)'),
        (SEALED, {"secret_key": KEY}, "free-form proxies are disabled on this worker"),
        (SEALED, {"allow_request_proxy": True}, "MXPROBE_SECRET_KEY is not set on this worker"),
        (
            SEALED,
            {"allow_request_proxy": True, "secret_key": Fernet.generate_key().decode()},
            "sealed with another MXPROBE_SECRET_KEY",
        ),
        (
            RequestProxy(host="proxy.test", port=1080, erased=True),
            {"allow_request_proxy": True, "secret_key": KEY},
            "erased: it has ended",
        ),
    ],
)
def test_a_proxy_this_worker_cannot_produce_says_why(
    stored: NamedProxy | RequestProxy, values: dict[str, object], says: str
) -> None:
    with pytest.raises(options.ProxyUnavailable) as raised:
        options.proxy_config(stored, settings=settings(**values))

    assert says in str(raised.value)


def test_the_row_of_an_unavailable_proxy_says_so_and_keeps_its_syntax() -> None:
    exc = options.ProxyUnavailable('proxy "eu" is not configured on this worker')

    output = options.unavailable_output(failed_output("Alice@Example.org", exc), exc).to_json()

    error = {"type": "ProxyUnavailable", "message": str(exc)}
    assert output["is_reachable"] == "unknown"
    assert output["mx"] == {"error": error}
    assert output["smtp"] == {"error": error}
    assert output["syntax"]["is_valid_syntax"] is True
    assert output["syntax"]["domain"] == "Example.org"
