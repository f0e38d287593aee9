"""Proxy settings and credentials: what python-socks cannot send is refused at start-up, and
sealed credentials open only with their key."""

from __future__ import annotations

import pydantic
import pytest
from cryptography.fernet import Fernet

from app import sealing
from app.engine.config import ProxyConfig, credentials_problem
from app.settings import Settings

KEY = Fernet.generate_key().decode()


def test_named_proxies_are_parsed_and_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MXPROBE_PROXIES",
        '{"eu": "socks5://u%40x:p%3Aw@10.0.0.5:1080", "us-2": "socks5://proxy.test:1081"}',
    )

    proxies = Settings().named_proxies()

    assert proxies == {
        "eu": ProxyConfig(
            host="10.0.0.5", port=1080, username="u@x", password="p:w", allow_private=True
        ),
        "us-2": ProxyConfig(host="proxy.test", port=1081, allow_private=True),
    }


def test_free_form_and_private_proxies_are_off_by_default() -> None:
    settings = Settings()

    assert settings.proxies == {}
    assert settings.allow_request_proxy is False
    assert settings.allow_private_proxy is False
    assert settings.secret_key is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MXPROBE_PROXIES", '{"eu": "http://proxy.test:3128"}'),
        ("MXPROBE_PROXIES", '{"eu": "socks5://proxy.test"}'),
        ("MXPROBE_PROXIES", '{"e u": "socks5://proxy.test:1080"}'),
        ("MXPROBE_PROXIES", '{"": "socks5://proxy.test:1080"}'),
        ("MXPROBE_PROXIES", '{"eu": "socks5://user@proxy.test:1080"}'),  # no password
        ("MXPROBE_PROXIES", '{"eu": "socks5://:pw@proxy.test:1080"}'),  # no username
        ("MXPROBE_PROXIES", '{"eu": "socks5://us%C3%A9r:pw@proxy.test:1080"}'),  # non-ASCII
        ("MXPROBE_PROXIES", '{"eu": "socks5://u:' + "p" * 256 + '@proxy.test:1080"}'),
        ("MXPROBE_PROXIES", '{"eu": "socks5://u:p%00w@proxy.test:1080"}'),  # NUL
        ("MXPROBE_PROXIES", '["socks5://proxy.test:1080"]'),
        ("MXPROBE_PROXY", "socks5://us%C3%A9r:pw@proxy.test:1080"),
        ("MXPROBE_PROXY", "socks5://u:" + "p" * 256 + "@proxy.test:1080"),
        ("MXPROBE_PROXY", "socks5://user@proxy.test:1080"),
        ("MXPROBE_SECRET_KEY", "not a fernet key"),
        ("MXPROBE_SECRET_KEY", KEY[:-4]),
    ],
)
def test_proxies_python_socks_cannot_use_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(pydantic.ValidationError) as raised:
        Settings()

    assert name.removeprefix("MXPROBE_").lower() in str(raised.value)


def test_start_up_errors_never_echo_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXPROBE_PROXY", "socks5://user:s3cr\u00e9t@proxy.test:1080")

    with pytest.raises(pydantic.ValidationError) as raised:
        Settings()

    assert "must be ASCII" in str(raised.value)
    assert "s3cr" not in str(raised.value)


def test_the_longest_credentials_socks5_can_send_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MXPROBE_PROXY", f"socks5://{'u' * 255}:{'p' * 255}@proxy.test:1080")
    monkeypatch.setenv("MXPROBE_SECRET_KEY", KEY)

    settings = Settings()

    proxy = settings.probe_config().proxy
    assert proxy is not None
    assert (proxy.username, proxy.password) == ("u" * 255, "p" * 255)
    assert settings.secret_key is not None
    assert KEY not in repr(settings)
    assert "p" * 255 not in repr(settings)


@pytest.mark.parametrize(
    ("username", "password", "problem"),
    [
        ("u", None, "go together"),
        (None, "p", "go together"),
        ("", "p", "username must not be empty"),
        ("u", "", "password must not be empty"),
        ("us\u00e9r", "p", "username must be ASCII"),
        ("u", "\u20ac", "password must be ASCII"),
        ("u" * 256, "p", "username must be at most 255"),
        ("u", "p\x00", "password must not contain control characters"),
        ("u", "p\r\n", "password must not contain control characters"),
        ("u", "p", None),
        (None, None, None),
        ("u" * 255, " ~!", None),
    ],
)
def test_credentials_are_what_socks5_can_send(
    username: str | None, password: str | None, problem: str | None
) -> None:
    found = credentials_problem(username, password)

    assert found == problem if problem is None else problem in (found or "")
    if problem is not None:
        with pytest.raises(ValueError, match="proxy"):
            ProxyConfig(host="proxy.test", port=1080, username=username, password=password)


def test_sealed_credentials_open_with_their_key_only() -> None:
    token = sealing.seal(KEY, username="user", password="pa:ss")

    assert "user" not in token
    assert "pa:ss" not in token
    assert sealing.unseal(KEY, token) == ("user", "pa:ss")
    with pytest.raises(sealing.Unreadable):
        sealing.unseal(Fernet.generate_key().decode(), token)
    with pytest.raises(sealing.Unreadable):
        sealing.unseal(KEY, "not a token")
