"""Provider fingerprints from MX host names, politeness keys and policies."""

from __future__ import annotations

import pytest

from app.engine.rules.providers import (
    Provider,
    ProviderPolicy,
    limit_key,
    policy_for,
    provider_from_mx,
)


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        # Reacher's vectors
        pytest.param("alt4.aspmx.l.google.com.", Provider.GMAIL, id="gmail-alt4"),
        pytest.param("gmail-smtp-in.l.google.com.", Provider.GMAIL, id="gmail-smtp-in"),
        pytest.param("ASPMX.L.GOOGLE.COM.", Provider.GMAIL, id="gmail-upper-case"),
        # Reacher: everything else (no trailing dot). Us: Gmail.
        pytest.param("aspmx.l.google.com", Provider.GMAIL, id="gmail-without-trailing-dot"),
        pytest.param(
            "hotmail-com.olc.protection.outlook.com.", Provider.MICROSOFT_B2C, id="hotmail-olc"
        ),
        pytest.param("eur.olc.protection.outlook.com.", Provider.MICROSOFT_B2C, id="eur-olc"),
        pytest.param(
            "outlook-com.olc.protection.outlook.com.", Provider.MICROSOFT_B2C, id="outlook-olc"
        ),
        pytest.param(
            "contoso-com.mail.protection.outlook.com.", Provider.MICROSOFT, id="microsoft-365"
        ),
        # Reacher: HotmailB2B (case-sensitive olc check). Us: consumer Outlook.
        pytest.param(
            "HOTMAIL-COM.OLC.PROTECTION.OUTLOOK.COM.",
            Provider.MICROSOFT_B2C,
            id="olc-upper-case",
        ),
        pytest.param("mta7.am0.yahoodns.net.", Provider.YAHOO, id="yahoo-mta7"),
        pytest.param("mx-eu.mail.am0.yahoodns.net.", Provider.YAHOO, id="yahoo-mx-eu"),
        pytest.param("mx0a-001234.pphosted.com.", Provider.PROOFPOINT, id="proofpoint"),
        pytest.param("mx1.ppe-hosted.com.", Provider.PROOFPOINT, id="proofpoint-essentials"),
        pytest.param("us-smtp-inbound-1.mimecast.com.", Provider.MIMECAST, id="mimecast"),
        pytest.param("mx.example.com.", Provider.OTHER, id="other"),
        # Reacher: everything else. Us: we know Mail.ru.
        pytest.param("mx1.mail.ru.", Provider.MAIL_RU, id="mail-ru"),
        # more providers
        pytest.param("smtp.google.com", Provider.GMAIL, id="workspace-smtp-google"),
        pytest.param("aspmx2.googlemail.com.", Provider.GMAIL, id="workspace-old-backup"),
        pytest.param("mx-aol.mail.gm0.yahoodns.net.", Provider.YAHOO, id="aol-on-yahoo"),
        pytest.param("mx.zoho.com", Provider.ZOHO, id="zoho"),
        pytest.param("mx2.zoho.eu.", Provider.ZOHO, id="zoho-eu"),
        pytest.param("mail.protonmail.ch.", Provider.PROTON, id="proton"),
        pytest.param("mailsec.protonmail.ch", Provider.PROTON, id="proton-mailsec"),
        pytest.param("mx01.mail.icloud.com.", Provider.ICLOUD, id="icloud"),
        pytest.param("in1-smtp.messagingengine.com.", Provider.FASTMAIL, id="fastmail"),
        pytest.param("d123.ess.barracudanetworks.com.", Provider.BARRACUDA, id="barracuda"),
        pytest.param("mx10.antispamcloud.com.", Provider.SPAMEXPERTS, id="spamexperts"),
        pytest.param(".antispamcloud.com.", Provider.SPAMEXPERTS, id="reachers-odd-host"),
        pytest.param("mx.yandex.net.", Provider.YANDEX, id="yandex"),
        pytest.param("mx00.emig.gmx.net.", Provider.GMX, id="gmx"),
        pytest.param("mx-ha02.web.de.", Provider.GMX, id="web-de"),
        # suffixes only match at a label boundary
        pytest.param("evil-google.com.", Provider.OTHER, id="not-google"),
        pytest.param("google.com.evil.example.", Provider.OTHER, id="google-as-a-prefix"),
        pytest.param("notyahoodns.net", Provider.OTHER, id="not-yahoo"),
        pytest.param("", Provider.OTHER, id="empty"),
    ],
)
def test_provider_from_mx(host, provider):
    assert provider_from_mx(host) is provider


@pytest.mark.parametrize(
    ("host", "key"),
    [
        pytest.param("alt4.aspmx.l.google.com.", "gmail", id="all-google-shares-one"),
        pytest.param("ASPMX.L.GOOGLE.COM", "gmail", id="google-upper-case"),
        pytest.param("eur.olc.protection.outlook.com.", "microsoft_b2c", id="consumer-outlook"),
        pytest.param("contoso-com.mail.protection.outlook.com.", "microsoft", id="m365"),
        pytest.param("MX.Example.COM.", "mx.example.com", id="other-by-host"),
        pytest.param("mx.example.com", "mx.example.com", id="other-without-dot"),
    ],
)
def test_limit_key(host, key):
    assert limit_key(host) == key


@pytest.mark.parametrize(
    ("provider", "max_rcpts", "one_domain", "max_invalid", "skip_catch_all"),
    [
        pytest.param(Provider.GMAIL, 100, True, 5, True, id="gmail-one-domain-per-transaction"),
        pytest.param(Provider.MICROSOFT_B2C, 1, True, 1, True, id="consumer-outlook-one-rcpt"),
        pytest.param(Provider.YAHOO, 100, False, 3, True, id="yahoo-few-unknowns"),
        pytest.param(Provider.SPAMEXPERTS, 100, False, 5, True, id="spamexperts-skip-catch-all"),
        pytest.param(Provider.MICROSOFT, 100, False, 5, False, id="m365-default"),
        pytest.param(Provider.OTHER, 100, False, 5, False, id="other-default"),
    ],
)
def test_policy_for(provider, max_rcpts, one_domain, max_invalid, skip_catch_all):
    assert policy_for(provider) == ProviderPolicy(
        max_rcpts_per_session=max_rcpts,
        one_domain_per_transaction=one_domain,
        max_invalid_rcpts_per_session=max_invalid,
        skip_catch_all=skip_catch_all,
    )


@pytest.mark.parametrize("provider", list(Provider))
def test_every_policy_stays_under_postfix_error_limits(provider):
    policy = policy_for(provider)
    assert 1 <= policy.max_invalid_rcpts_per_session < 10
    assert policy.max_rcpts_per_session >= 1


@pytest.mark.parametrize(
    ("mx_host", "skip"),
    [
        # Reacher's SkipCatchAll rule vectors
        pytest.param("alt4.aspmx.l.google.com.", True, id="gmail"),
        pytest.param(".antispamcloud.com.", True, id="antispamcloud-odd-host"),
        pytest.param("eur.olc.protection.outlook.com.", True, id="hotmail-nl"),
        # Reacher: false (outlook.com not in its domain list). Us: every consumer Outlook MX.
        pytest.param("outlook-com.olc.protection.outlook.com.", True, id="outlook-com"),
        pytest.param("mx.example.com.", False, id="example"),
        pytest.param("mx10.antispamcloud.com.", True, id="antispamcloud"),
    ],
)
def test_skip_catch_all_follows_the_mx(mx_host, skip):
    assert policy_for(provider_from_mx(mx_host)).skip_catch_all is skip
