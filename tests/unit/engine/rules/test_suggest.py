"""Typo suggestions for provider domains."""

from __future__ import annotations

import pytest

from app.engine.rules.suggest import SUGGESTION_TARGETS, suggest_domain


@pytest.mark.parametrize(
    ("username", "domain", "expected"),
    [
        pytest.param("test", "gmali.com", "test@gmail.com", id="gmali-swapped-letters"),
        pytest.param("u", "gmai.com", "u@gmail.com", id="gmai-missing-letter"),
        pytest.param("u", "gmail.co", "u@gmail.com", id="gmail-co-missing-m"),
        pytest.param("u", "yahooo.com", "u@yahoo.com", id="yahooo-extra-letter"),
        pytest.param("u", "hotmial.com", "u@hotmail.com", id="hotmial-swapped"),
        pytest.param("u", "outlok.com", "u@outlook.com", id="outlok"),
        pytest.param("u", "icloud.co", "u@icloud.com", id="icloud-co"),
        pytest.param("u", "gnail.con", "u@gmail.com", id="two-edits-on-a-long-domain"),
        pytest.param("u", "GMALI.COM", "u@gmail.com", id="compared-lower-case"),
        pytest.param("Some.One", "yhaoo.com", "Some.One@yahoo.com", id="username-kept-as-given"),
        pytest.param("u", "aol.co", "u@aol.com", id="short-domain-one-edit"),
        pytest.param("u", "comcast.met", "u@comcast.net", id="comcast"),
        # Reacher: gmail.com suggests itself; ymail.com → gmail.com; protonmail.ch →
        # protonmail.com. Us: a real provider domain never draws a suggestion.
        pytest.param("u", "gmail.com", None, id="real-gmail"),
        pytest.param("u", "ymail.com", None, id="real-ymail"),
        pytest.param("u", "protonmail.ch", None, id="real-protonmail-ch"),
        pytest.param("u", "outlook.fr", None, id="real-outlook-fr"),
        pytest.param("u", "yandex.ru", None, id="real-yandex"),
        pytest.param("u", "gmx.com", None, id="real-gmx"),
        pytest.param("u", "mail.com", None, id="real-mail-com"),
        pytest.param("u", "email.com", None, id="real-email-com"),
        pytest.param("u", "me.com", None, id="real-me-com"),
        pytest.param("u", "cox.com", None, id="free-mail-list-counts-as-real"),
        # unrelated, or too far
        pytest.param("u", "example.com", None, id="example"),
        pytest.param("u", "bar.com", None, id="three-edits"),
        pytest.param("u", "acme.co", None, id="unrelated-short"),
        pytest.param("u", "aol.xy", None, id="short-domain-two-edits"),
        pytest.param("u", "gmailxx.org", None, id="far"),
        pytest.param("u", "", None, id="empty"),
    ],
)
def test_suggest_domain(username, domain, expected):
    assert suggest_domain(username, domain) == expected


@pytest.mark.parametrize("target", SUGGESTION_TARGETS)
def test_no_target_suggests_anything_for_itself(target):
    assert suggest_domain("u", target) is None
