"""Address syntax: Reacher's 42 syntax vectors with our decisions, plus what goes on the wire."""

from __future__ import annotations

import pytest

from app.engine.rules.syntax import has_control_chars, normalize_email, parse_address

# (input, username, domain, ascii_domain, normalized_email)
VALID = [
    pytest.param("foo@bar.com", "foo", "bar.com", "bar.com", "foo@bar.com", id="plain"),
    pytest.param("foo@bar.baz", "foo", "bar.baz", "bar.baz", "foo@bar.baz", id="unknown-tld"),
    pytest.param(
        "A.B.C+123@googlemail.com",
        "A.B.C+123",
        "googlemail.com",
        "googlemail.com",
        "abc@gmail.com",
        id="googlemail-normalised",
    ),
    pytest.param(
        "John.Doe@Example.COM",
        "John.Doe",
        "Example.COM",
        "example.com",
        "John.Doe@Example.COM",
        id="case-kept-wire-domain-lowered",
    ),
    pytest.param(
        "!#$%&'*+-/=?^_`{|}~@example.com",
        "!#$%&'*+-/=?^_`{|}~",
        "example.com",
        "example.com",
        "!#$%&'*+-/=?^_`{|}~@example.com",
        id="every-atext-symbol",
    ),
    pytest.param(
        "user+mailbox@example.com",
        "user+mailbox",
        "example.com",
        "example.com",
        "user+mailbox@example.com",
        id="plus-tag-kept-outside-gmail",
    ),
    pytest.param(
        "customer/department=shipping@example.com",
        "customer/department=shipping",
        "example.com",
        "example.com",
        "customer/department=shipping@example.com",
        id="slash-and-equals",
    ),
    pytest.param("a@x.y", "a", "x.y", "x.y", "a@x.y", id="single-letter-tld"),
    pytest.param(
        "abc@xn--hxajbheg2az3al.xn--jxalpdlp",
        "abc",
        "xn--hxajbheg2az3al.xn--jxalpdlp",
        "xn--hxajbheg2az3al.xn--jxalpdlp",
        "abc@xn--hxajbheg2az3al.xn--jxalpdlp",
        id="punycode-given",
    ),
    pytest.param("abc@c--n.com", "abc", "c--n.com", "c--n.com", "abc@c--n.com", id="double-hyphen"),
    pytest.param(
        "abc@ab--cd.com",
        "abc",
        "ab--cd.com",
        "ab--cd.com",
        "abc@ab--cd.com",
        id="hyphens-in-3rd-and-4th-position",
    ),
    # Reacher's "uncertain" pair: accepted (163.com, 126.com depend on it).
    pytest.param(
        "abc@1example.com",
        "abc",
        "1example.com",
        "1example.com",
        "abc@1example.com",
        id="label-starts-with-digit",
    ),
    pytest.param("abc@x.123", "abc", "x.123", "x.123", "abc@x.123", id="numeric-tld"),
    pytest.param("abc@163.com", "abc", "163.com", "163.com", "abc@163.com", id="numeric-label"),
    # Reacher: invalid syntax (disposable). Us: valid; lists.is_disposable reports them.
    pytest.param(
        "ok@33mail.com", "ok", "33mail.com", "33mail.com", "ok@33mail.com", id="disposable-33mail"
    ),
    pytest.param(
        "ok@ok.33mail.com",
        "ok",
        "ok.33mail.com",
        "ok.33mail.com",
        "ok@ok.33mail.com",
        id="disposable-subdomain",
    ),
    pytest.param(
        "ok@guerrillamailblock.com",
        "ok",
        "guerrillamailblock.com",
        "guerrillamailblock.com",
        "ok@guerrillamailblock.com",
        id="disposable-guerrilla",
    ),
    pytest.param(
        "x@mailinator.com",
        "x",
        "mailinator.com",
        "mailinator.com",
        "x@mailinator.com",
        id="disposable-mailinator",
    ),
    # Reacher: invalid (non-ASCII). Us: IDN domains are valid, A-label on the wire.
    pytest.param(
        "abc@exámple.com",
        "abc",
        "exámple.com",
        "xn--exmple-qta.com",
        "abc@exámple.com",
        id="idn-domain",
    ),
    pytest.param(
        "abc@EXÁMPLE.com",
        "abc",
        "EXÁMPLE.com",
        "xn--exmple-qta.com",
        "abc@EXÁMPLE.com",
        id="idn-domain-upper-case",
    ),
    pytest.param(
        "abc@münchen.de",
        "abc",
        "münchen.de",
        "xn--mnchen-3ya.de",
        "abc@münchen.de",
        id="idn-umlaut",
    ),
]

INVALID = [
    pytest.param("foo", id="no-at"),
    pytest.param("foo@bar", id="no-dot-in-domain"),
    pytest.param(" foo@bar.com", id="leading-space-not-trimmed"),
    pytest.param("foo@bar.com ", id="trailing-space-not-trimmed"),
    pytest.param("ok@gmail.com\n", id="trailing-newline"),
    pytest.param("plopplop.com", id="domain-only"),
    pytest.param("my+ok@ok=plop.com", id="equals-in-domain"),
    pytest.param("my,ok@ok.plop.com", id="comma-in-local-part"),
    pytest.param("test+📧@gmail.com", id="emoji-in-local-part"),
    pytest.param("jörg@example.com", id="non-ascii-local-part"),
    pytest.param("@example.com", id="no-local-part"),
    pytest.param("abc@", id="no-domain"),
    pytest.param("abc@def@example.com", id="two-ats"),
    pytest.param(".abc@example.com", id="local-starts-with-dot"),
    pytest.param("abc.@example.com", id="local-ends-with-dot"),
    pytest.param("ab..cd@example.com", id="local-double-dot"),
    pytest.param("abc@example..com", id="domain-double-dot"),
    pytest.param("abc@example.com.", id="domain-trailing-dot"),
    pytest.param("abc@.example.com", id="domain-leading-dot"),
    pytest.param("a@example", id="domain-without-dot"),
    pytest.param("abc def@example.com", id="space-in-local-part"),
    pytest.param('"abc"@example.com', id="quoted-local-part"),
    pytest.param('"a b"@example.com', id="quoted-local-part-with-space"),
    pytest.param("(comment)abc@example.com", id="comment"),
    pytest.param("abc@[255.255.255.255]", id="ip-literal"),
    pytest.param("abc@[IPv6:::1]", id="ipv6-literal"),
    pytest.param("abc@x.y_y.z", id="underscore-in-domain"),
    pytest.param("abc@-example.com", id="label-starts-with-hyphen"),
    pytest.param("abc@example-.com", id="label-ends-with-hyphen"),
    pytest.param("a" * 65 + "@example.com", id="local-part-65"),
    pytest.param("abc@exa mple.com", id="space-in-domain"),
    pytest.param("abc@exa\u3000mple.com", id="ideographic-space-in-domain"),
    pytest.param("abc@exámple..com", id="idn-double-dot"),
    pytest.param("abc@ex_ámple.com", id="idn-underscore"),
    pytest.param("", id="empty"),
    pytest.param("@", id="only-at"),
]

INJECTION = [
    pytest.param("a@b.com\r\nDATA", id="crlf-then-data"),
    pytest.param("a@b.com\nRCPT TO:<x@y.z>", id="lf-then-rcpt"),
    pytest.param("a@b.com\r", id="trailing-cr"),
    pytest.param("a\x00@b.com", id="nul"),
    pytest.param("a\t@b.com", id="tab"),
    pytest.param("a@b.com\u2028", id="line-separator"),
    pytest.param("a@b.com\u2029", id="paragraph-separator"),
    pytest.param("a@b\x7f.com", id="del"),
    pytest.param("a@b.com\x85", id="c1-next-line"),
    pytest.param("a\x1b[31m@b.com", id="escape-sequence"),
]


@pytest.mark.parametrize(("raw", "username", "domain", "ascii_domain", "normalized"), VALID)
def test_valid(raw, username, domain, ascii_domain, normalized):
    parsed = parse_address(raw)
    assert parsed.is_valid, parsed.error
    assert parsed.error is None
    assert parsed.address == raw
    assert (parsed.username, parsed.domain, parsed.ascii_domain) == (
        username,
        domain,
        ascii_domain,
    )
    assert parsed.normalized_email == normalized
    assert parsed.suggestion is None


@pytest.mark.parametrize("raw", INVALID + INJECTION)
def test_invalid_has_reachers_empty_shape(raw):
    parsed = parse_address(raw)
    assert not parsed.is_valid
    assert parsed.error
    assert (parsed.address, parsed.username, parsed.domain, parsed.ascii_domain) == (
        None,
        "",
        "",
        "",
    )
    assert (parsed.normalized_email, parsed.suggestion) == (None, None)


@pytest.mark.parametrize("raw", INJECTION)
def test_control_characters_never_reach_the_wire(raw):
    assert has_control_chars(raw)
    assert parse_address(raw).error == "contains a control character"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("plain@example.com", False, id="plain"),
        pytest.param("exámple 📧", False, id="non-ascii-and-space-are-not-control"),
        pytest.param("\x00", True, id="nul"),
        pytest.param("\t", True, id="tab"),
        pytest.param("\r", True, id="cr"),
        pytest.param("\n", True, id="lf"),
        pytest.param("\x1f", True, id="unit-separator"),
        pytest.param("\x7f", True, id="del"),
        pytest.param("\x80", True, id="c1-first"),
        pytest.param("\x9f", True, id="c1-last"),
        pytest.param("\xa0", False, id="nbsp-is-not-control"),
        pytest.param("\u2028", True, id="line-separator"),
        pytest.param("\u2029", True, id="paragraph-separator"),
        pytest.param("", False, id="empty"),
    ],
)
def test_has_control_chars(value, expected):
    assert has_control_chars(value) is expected


def _domain(octets: int) -> str:
    """A host name of exactly `octets` octets: 63-octet labels, then the rest."""
    labels = []
    while octets > 64:
        labels.append("b" * 63)
        octets -= 64
    labels.append("c" * octets)
    return ".".join(labels)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param("a" * 64 + "@example.com", None, id="local-64"),
        pytest.param(
            "a" * 65 + "@example.com", "local part is longer than 64 octets", id="local-65"
        ),
        pytest.param("a@" + "b" * 63 + ".com", None, id="label-63"),
        pytest.param(
            "a@" + "b" * 64 + ".com", "domain label is longer than 63 octets", id="label-64"
        ),
        pytest.param("a@" + _domain(252), None, id="domain-252-address-254"),
        pytest.param("a@" + _domain(254), "domain is longer than 253 octets", id="domain-254"),
        pytest.param("a" * 10 + "@" + _domain(243), None, id="address-254"),
        pytest.param(
            "a" * 11 + "@" + _domain(243), "address is longer than 254 octets", id="address-255"
        ),
        pytest.param(
            "a@" + "ä" * 60 + ".com",
            "domain is not a valid internationalised name",
            id="idn-label-over-63-as-an-a-label",
        ),
    ],
)
def test_length_limits_in_octets_of_the_wire_form(raw, error):
    assert parse_address(raw).error == error


def test_ascii_address_is_what_goes_on_the_wire():
    parsed = parse_address("Jörg.Ä@Bücher.Example")
    assert not parsed.is_valid  # non-ASCII local part
    parsed = parse_address("Joerg@Bücher.Example")
    assert parsed.ascii_domain == "xn--bcher-kva.example"
    assert parsed.ascii_address == "Joerg@xn--bcher-kva.example"


def test_suggestion_is_filled_for_a_typo():
    assert parse_address("test@gmali.com").suggestion == "test@gmail.com"


@pytest.mark.parametrize(
    ("username", "domain", "expected"),
    [
        pytest.param("a.b.c", "gmail.com", "abc@gmail.com", id="gmail-dots"),
        pytest.param("abc+123", "gmail.com", "abc@gmail.com", id="gmail-plus-tag"),
        pytest.param("abc", "googlemail.com", "abc@gmail.com", id="googlemail"),
        pytest.param("A.B.C+123", "googlemail.com", "abc@gmail.com", id="googlemail-all"),
        pytest.param("abc", "gmail.com", "abc@gmail.com", id="gmail-idempotent"),
        pytest.param("A.B", "example.com", "A.B@example.com", id="other-domains-unchanged"),
        pytest.param("a.b", "GMAIL.COM", "a.b@GMAIL.COM", id="domain-match-is-case-sensitive"),
        pytest.param("a+b+c", "gmail.com", "a@gmail.com", id="first-plus-wins"),
        pytest.param("+tag", "gmail.com", "+tag@gmail.com", id="nothing-left-keeps-input"),
    ],
)
def test_normalize_email(username, domain, expected):
    assert normalize_email(username, domain) == expected
