"""`app.fetch`'s pure parts: what a stored or shown URL keeps, the settings that feed `open_url`."""

from __future__ import annotations

import pydantic
import pytest

from app.fetch import FetchError, public_url
from app.settings import Settings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.com/list.csv", "https://example.com/list.csv"),
        ("https://user:pass@example.com/list.csv", "https://example.com/list.csv"),
        ("https://u%40x:p%3Aw@example.com:8443/l?a=1#f", "https://example.com:8443/l?a=1#f"),
        ("http://user@example.com/", "http://example.com/"),
        ("HTTP://USER:PASS@EXAMPLE.COM", "HTTP://EXAMPLE.COM"),
        ("http://a:b@c@example.com/x", "http://example.com/x"),  # the last "@" ends userinfo
        ("http://u:p@h\\@evil.test/x", "http://evil.test/x"),  # as httpx reads it
        ("http://u:p@[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://example.com/p?next=a@b", "http://example.com/p?next=a@b"),  # not userinfo
        ("http://example.com/#a@b", "http://example.com/#a@b"),
        ("http:u:p@example.com/", "http:example.com/"),  # browsers read this as userinfo too
        ("http:\\\\u:p@example.com/", "http:\\\\example.com/"),
        (" https://u:p@example.com/", " https://example.com/"),
        ("", ""),
    ],
)
def test_public_url_drops_userinfo_only(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_a_fetch_error_carries_its_statuses() -> None:
    error = FetchError(
        "example.com:443 answered HTTP 404 Not Found", status=502, upstream_status=404
    )

    assert (error.status, error.upstream_status, str(error)) == (
        502,
        404,
        "example.com:443 answered HTTP 404 Not Found",
    )
    assert FetchError("x", status=400).upstream_status is None


def test_remote_settings_default_to_public_only() -> None:
    settings = Settings()

    assert settings.allow_private_urls is False
    assert settings.remote_max_bytes == 1 << 30
    assert settings.remote_timeout == 30.0


def test_remote_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXPROBE_ALLOW_PRIVATE_URLS", "true")
    monkeypatch.setenv("MXPROBE_REMOTE_MAX_BYTES", "1048576")
    monkeypatch.setenv("MXPROBE_REMOTE_TIMEOUT", "2.5")

    settings = Settings()

    assert settings.allow_private_urls is True
    assert settings.remote_max_bytes == 1 << 20
    assert settings.remote_timeout == 2.5


@pytest.mark.parametrize(
    ("name", "value"), [("MXPROBE_REMOTE_MAX_BYTES", "0"), ("MXPROBE_REMOTE_TIMEOUT", "0")]
)
def test_remote_limits_must_be_positive(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(pydantic.ValidationError):
        Settings()
