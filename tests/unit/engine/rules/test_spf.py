"""SPF records read from TXT records (no evaluation), and the providers they name."""

from __future__ import annotations

import pytest

from app.engine.rules import spf
from app.engine.rules.providers import Provider, authorises, hosting, providers_in_spf


@pytest.mark.parametrize(
    ("text", "includes", "redirect", "all_qualifier"),
    [
        ("v=spf1 include:_spf.google.com ~all", ("_spf.google.com",), None, "~"),
        ("V=SPF1 INCLUDE:_SPF.Google.COM. -ALL", ("_spf.google.com",), None, "-"),
        ("v=spf1 +include:a.test -include:b.test ?all", ("a.test", "b.test"), None, "?"),
        ("v=spf1 redirect=_spf.google.com", (), "_spf.google.com", None),
        ("v=spf1 mx a ip4:192.0.2.0/24 ip6:2001:db8::/32 all", (), None, "+"),
        (
            "v=spf1 include:%{i}._ip.%{h}._ehlo.%{d}._spf.vali.email ~all",
            ("%{i}._ip.%{h}._ehlo.%{d}._spf.vali.email",),
            None,
            "~",
        ),
        ("v=spf1 exp=explain.test include:x.test", ("x.test",), None, None),
        ("v=spf1", (), None, None),
        ("v=spf1   include:spaced.test   ", ("spaced.test",), None, None),
    ],
)
def test_records_are_split_into_their_terms(
    text: str, includes: tuple[str, ...], redirect: str | None, all_qualifier: str | None
) -> None:
    record = spf.parse(text)

    assert (record.includes, record.redirect, record.all_qualifier) == (
        includes,
        redirect,
        all_qualifier,
    )


@pytest.mark.parametrize(
    ("texts", "found", "problem"),
    [
        ([], False, None),
        (["google-site-verification=x", "v=spf10 nonsense"], False, None),
        (["v=spf1 -all"], True, None),
        (
            ["v=spf1 -all", "v=spf1 include:_spf.google.com -all"],
            False,
            "2 SPF records (RFC 7208 allows one)",
        ),
        (["  v=spf1 ~all"], True, None),
    ],
)
def test_a_domain_has_at_most_one_spf_record(
    texts: list[str], found: bool, problem: str | None
) -> None:
    lookup = spf.find(texts)

    assert (lookup.found, lookup.problem) == (found, problem)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("v=spf1 include:_spf.google.com ~all", (Provider.GMAIL,)),
        ("v=spf1 include:spf.protection.outlook.com -all", (Provider.MICROSOFT,)),
        ("v=spf1 include:zoho.eu ~all", (Provider.ZOHO,)),
        ("v=spf1 include:one.zoho.com ~all", (Provider.ZOHO,)),
        ("v=spf1 include:_spf.protonmail.ch mx ~all", (Provider.PROTON,)),
        ("v=spf1 include:icloud.com ~all", (Provider.ICLOUD,)),
        ("v=spf1 include:spf.messagingengine.com ?all", (Provider.FASTMAIL,)),
        ("v=spf1 include:_spf.mail.yahoo.com ~all", (Provider.YAHOO,)),
        ("v=spf1 redirect=_spf.google.com", (Provider.GMAIL,)),
        (
            "v=spf1 include:spf.protection.outlook.com include:_spf.google.com -all",
            (Provider.MICROSOFT, Provider.GMAIL),
        ),
        ("v=spf1 include:notgoogle.com include:spf.example.net -all", ()),
        ("v=spf1 include:evil_spf.google.com.attacker.test -all", ()),
    ],
)
def test_providers_named_by_a_record(text: str, named: tuple[Provider, ...]) -> None:
    assert providers_in_spf(spf.parse(text)) == named


def test_consumer_outlook_is_authorised_by_microsofts_spf_domain() -> None:
    record = spf.parse("v=spf1 include:spf.protection.outlook.com -all")

    assert authorises(record, Provider.MICROSOFT_B2C)
    assert not authorises(record, Provider.GMAIL)


@pytest.mark.parametrize(
    ("mx", "text", "provider", "source"),
    [
        # A mailbox provider's MX decides, whatever the SPF record says.
        (["aspmx.l.google.com"], "v=spf1 include:spf.protection.outlook.com -all", "gmail", "mx"),
        # A filtering gateway or an unknown MX: one provider in the SPF record decides.
        (
            ["mx0a-1.pphosted.com"],
            "v=spf1 include:spf.protection.outlook.com -all",
            "microsoft",
            "spf",
        ),
        (["eu-smtp-inbound-1.mimecast.com"], "v=spf1 include:_spf.google.com ~all", "gmail", "spf"),
        (["mail.example.test"], "v=spf1 include:_spf.google.com ~all", "gmail", "spf"),
        # ... but not two, nor none.
        (
            ["mail.example.test"],
            "v=spf1 include:_spf.google.com include:spf.protection.outlook.com ~all",
            "other",
            "mx",
        ),
        (["mx0a-1.pphosted.com"], "v=spf1 mx -all", "proofpoint", "mx"),
        (["mail.example.test"], None, "other", "mx"),
        # The preferred MX is the one that counts.
        (["mail.example.test", "aspmx.l.google.com"], None, "other", "mx"),
    ],
)
def test_hosting_from_mx_and_spf(
    mx: list[str], text: str | None, provider: str, source: str
) -> None:
    found = hosting(mx, spf.parse(text) if text else None)

    assert (found.provider.value, found.source) == (provider, source)
