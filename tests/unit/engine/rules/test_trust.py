"""The trusted list, its extension by MXPROBE_TRUSTED_PROVIDERS, and the verdict policy."""

from __future__ import annotations

import pytest

from app.engine.model import Reachable
from app.engine.rules import spf, trust
from app.engine.rules.providers import Provider, hosting


def trusts(mx: str, spf_text: str | None = None, *extra: str) -> bool:
    found = hosting([mx], spf.parse(spf_text) if spf_text else None)
    return trust.trusted_list(extra).trusts(found, mx_hosts=[mx])


@pytest.mark.parametrize(
    "mx",
    [
        "gmail-smtp-in.l.google.com",
        "smtp.google.com",
        "contoso-com.mail.protection.outlook.com",
        "hotmail-com.olc.protection.outlook.com",
        "mta5.am0.yahoodns.net",
        "mx-aol.mail.gm0.yahoodns.net",
        "mx.zoho.eu",
        "mail.protonmail.ch",
        "mx01.mail.icloud.com",
        "in1-smtp.messagingengine.com",
    ],
)
def test_seed_003s_providers_are_trusted(mx: str) -> None:
    assert trusts(mx)


@pytest.mark.parametrize(
    "mx", ["mail.asurad.com", "mx.yandex.ru", "mxs.mail.ru", "mx00.gmx.net", "mx1.pphosted.com"]
)
def test_others_are_not(mx: str) -> None:
    assert not trusts(mx)


def test_spf_counts_behind_a_gateway_but_not_behind_the_domains_own_mx() -> None:
    google = "v=spf1 include:_spf.google.com ~all"

    assert trusts("mx0a-1.pphosted.com", google)
    assert not trusts("mail.asurad.com", google)


@pytest.mark.parametrize(
    ("entry", "mx"),
    [
        ("yandex", "mx.yandex.ru"),
        ("MAIL_RU", "mxs.mail.ru"),
        ("web_de", "mx-ha03.web.de"),
        ("asurad.com", "mail.asurad.com"),
        ("asurad.com.", "MAIL.ASURAD.COM."),
    ],
)
def test_the_list_is_extendable(entry: str, mx: str) -> None:
    assert not trusts(mx)
    assert trusts(mx, None, entry)


def test_a_domain_entry_matches_at_a_label_boundary() -> None:
    assert not trusts("mail.notasurad.com", None, "asurad.com")


@pytest.mark.parametrize("entry", ["gmial", "other", "", "not a name", "evil.com/x"])
def test_unknown_entries_are_refused(entry: str) -> None:
    assert trust.entry_problem(entry) is not None
    with pytest.raises(ValueError, match="neither a provider"):
        trust.trusted_list([entry])


def test_aliases() -> None:
    listed = trust.trusted_list(["aol", "google_workspace", "outlook"])

    assert {Provider.YAHOO, Provider.GMAIL, Provider.MICROSOFT_B2C} <= listed.providers


@pytest.mark.parametrize(
    ("policy", "verdict", "trusted", "expected"),
    [
        (trust.Policy.NONE, Reachable.SAFE, False, Reachable.SAFE),
        (trust.Policy.TRUSTED_PROVIDERS_ONLY, Reachable.SAFE, True, Reachable.SAFE),
        (trust.Policy.TRUSTED_PROVIDERS_ONLY, Reachable.SAFE, False, Reachable.RISKY),
        (trust.Policy.TRUSTED_PROVIDERS_ONLY, Reachable.UNKNOWN, False, Reachable.RISKY),
        (trust.Policy.TRUSTED_PROVIDERS_ONLY, Reachable.RISKY, False, Reachable.RISKY),
        (trust.Policy.TRUSTED_PROVIDERS_ONLY, Reachable.INVALID, False, Reachable.INVALID),
        # No provider recognised (no MX found): the policy has nothing to say.
        (trust.Policy.TRUSTED_PROVIDERS_ONLY, Reachable.UNKNOWN, None, Reachable.UNKNOWN),
    ],
)
def test_the_policy_only_ever_lowers_safe_and_unknown(
    policy: trust.Policy, verdict: Reachable, trusted: bool | None, expected: Reachable
) -> None:
    outcome = trust.apply_policy(policy, verdict, trusted=trusted, describe="other")

    assert outcome.verdict is expected
    assert (outcome.reason is not None) == (verdict is not expected)
