"""Disposable domains, role accounts and consumer (B2C) providers."""

from __future__ import annotations

import pytest

from app.engine.rules import lists


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        pytest.param("mailinator.com", True, id="mailinator"),
        pytest.param("33mail.com", True, id="33mail"),
        pytest.param("ok.33mail.com", True, id="subdomain-of-disposable"),
        pytest.param("a.b.ok.33mail.com", True, id="deep-subdomain"),
        pytest.param("guerrillamailblock.com", True, id="guerrillamailblock"),
        pytest.param("Mailinator.COM", True, id="case-insensitive"),
        pytest.param("mailinator.com.", True, id="trailing-dot"),
        pytest.param("gmail.com", False, id="gmail"),
        pytest.param("outlook.com", False, id="outlook"),
        pytest.param("example.com", False, id="example"),
        pytest.param("xyzmailinator.com", False, id="suffix-needs-a-label-boundary"),
        pytest.param("mailinator.com.example", False, id="listed-name-as-a-prefix"),
        pytest.param("com", False, id="bare-tld"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_disposable(domain, expected):
    assert lists.is_disposable(domain) is expected


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        pytest.param("test", True, id="test"),
        pytest.param("admin", True, id="admin"),
        pytest.param("Admin", True, id="case-insensitive"),
        pytest.param("INFO", True, id="upper-case"),
        pytest.param("support", True, id="support"),
        pytest.param("sales", True, id="sales"),
        pytest.param("noreply", True, id="noreply"),
        pytest.param("no-reply", True, id="no-reply"),
        pytest.param("postmaster", True, id="postmaster"),
        pytest.param("abuse", True, id="abuse"),
        pytest.param("webmaster", True, id="webmaster"),
        pytest.param("admin+x", False, id="exact-match-only"),
        pytest.param("admin.x", False, id="no-prefix-match"),
        pytest.param("amaury", False, id="a-person"),
        pytest.param("john.doe", False, id="another-person"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_role_account(username, expected):
    assert lists.is_role_account(username) is expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        pytest.param("gmail.com", True, id="gmail"),
        pytest.param("GMAIL.com", True, id="case-insensitive"),
        pytest.param("yahoo.com", True, id="yahoo"),
        pytest.param("hotmail.nl", True, id="hotmail-nl"),
        pytest.param("example.org", False, id="example-org"),
        pytest.param("Example.org", False, id="example-org-mixed-case"),
        pytest.param("reacher.email", False, id="a-business"),
    ],
)
def test_is_b2c(domain, expected):
    assert lists.is_b2c(domain) is expected


@pytest.mark.parametrize(
    ("username", "domain", "disposable", "role", "b2c"),
    [
        pytest.param("test", "gmail.com", False, True, True, id="test-at-gmail"),
        pytest.param("Admin", "Example.org", False, True, False, id="admin-at-example"),
        pytest.param("admin+x", "acme.com", False, False, False, id="tagged-admin"),
        pytest.param("amaury", "reacher.email", False, False, False, id="person-at-business"),
    ],
)
def test_reachers_misc_vectors(username, domain, disposable, role, b2c):
    assert (
        lists.is_disposable(domain),
        lists.is_role_account(username),
        lists.is_b2c(domain),
    ) == (disposable, role, b2c)


def test_lists_are_loaded_once_as_lower_case_frozensets():
    for loader in (lists.disposable_domains, lists.role_accounts, lists.b2c_domains):
        first = loader()
        assert loader() is first
        assert isinstance(first, frozenset)
        assert first
        assert all(entry == entry.lower() and entry.strip() == entry for entry in first)


def test_role_list_has_no_comment_lines():
    assert not any(entry.startswith("#") for entry in lists.role_accounts())
