"""Who hosts a domain's mail, from its MX host names, and how politely to probe them.

Matching is on DNS suffixes at a label boundary, case-insensitive, with or without the root's
trailing dot. Consumer Outlook (``*.olc.protection.outlook.com``) is checked before Microsoft 365
(``*.protection.outlook.com``), as in Reacher; Reacher's remaining order (Gmail, Yahoo,
Proofpoint, Mimecast) does not matter here because no two suffixes overlap.

Where we differ from Reacher: its Gmail rule needs the trailing dot (``aspmx.l.google.com`` is
"everything else" there) and its consumer-Outlook rule is case-sensitive (an upper-case olc host
is Microsoft 365 there); both are provider-blind quirks we do not copy. We also know more
providers (Zoho, Proton, iCloud, Fastmail, Barracuda, SpamExperts, Yandex, Mail.ru, GMX/WEB.DE),
so e.g. ``mx1.mail.ru`` is ``mail_ru`` here, not "everything else".

Some MX hosts say who filters a domain's mail, not who keeps its mailboxes: a filtering
gateway (Mimecast, Proofpoint, Barracuda, SpamExperts) passes mail on to wherever the
mailboxes are, and a domain's own MX may do the same. There the domain's SPF record can tell:
the provider whose SPF domain it includes (``include:spf.protection.outlook.com``) is the one
that sends, and usually keeps, its mail (`hosting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from app.engine.rules.spf import SpfRecord


class Provider(StrEnum):
    GMAIL = "gmail"
    MICROSOFT_B2C = "microsoft_b2c"
    MICROSOFT = "microsoft"
    YAHOO = "yahoo"
    ZOHO = "zoho"
    PROTON = "proton"
    ICLOUD = "icloud"
    FASTMAIL = "fastmail"
    MIMECAST = "mimecast"
    PROOFPOINT = "proofpoint"
    BARRACUDA = "barracuda"
    SPAMEXPERTS = "spamexperts"
    YANDEX = "yandex"
    MAIL_RU = "mail_ru"
    GMX = "gmx"
    OTHER = "other"


# Checked in order; the first provider with a matching suffix wins.
MX_SUFFIXES: tuple[tuple[Provider, tuple[str, ...]], ...] = (
    (Provider.MICROSOFT_B2C, ("olc.protection.outlook.com",)),
    (Provider.MICROSOFT, ("protection.outlook.com", "mail.eo.outlook.com")),
    # smtp.google.com is Workspace's single MX; aspmx2..5.googlemail.com its old backups.
    (Provider.GMAIL, ("google.com", "googlemail.com")),
    # AOL and Verizon consumer mail are hosted by Yahoo (mx-aol.mail.gm0.yahoodns.net).
    (Provider.YAHOO, ("yahoodns.net",)),
    (Provider.PROOFPOINT, ("pphosted.com", "ppe-hosted.com")),
    (Provider.MIMECAST, ("mimecast.com", "mimecast.co.za", "mimecast-offshore.com")),
    (Provider.ZOHO, ("zoho.com", "zoho.eu", "zoho.in", "zoho.com.au", "zoho.jp", "zoho.com.cn")),
    (Provider.PROTON, ("protonmail.ch", "proton.me")),
    (Provider.ICLOUD, ("mail.icloud.com",)),
    (Provider.FASTMAIL, ("messagingengine.com",)),
    (Provider.BARRACUDA, ("barracudanetworks.com",)),
    # SpamExperts / N-able Mail Assure filtering; Reacher skips catch-all checks behind it.
    (Provider.SPAMEXPERTS, ("antispamcloud.com",)),
    (Provider.YANDEX, ("yandex.ru", "yandex.net")),
    (Provider.MAIL_RU, ("mail.ru",)),
    (Provider.GMX, ("gmx.net", "gmx.com", "web.de", "mail.com")),
)


GATEWAYS = frozenset(
    {Provider.MIMECAST, Provider.PROOFPOINT, Provider.BARRACUDA, Provider.SPAMEXPERTS}
)
"""Filtering services: mail passes through them to the mailboxes, which are elsewhere."""

# The domains a customer's SPF record includes to let a provider send for it (each provider's
# own setup documentation). Matched at a label boundary, like MX suffixes.
SPF_DOMAINS: tuple[tuple[Provider, tuple[str, ...]], ...] = (
    (Provider.GMAIL, ("_spf.google.com", "aspmx.googlemail.com")),
    (Provider.MICROSOFT, ("spf.protection.outlook.com",)),
    (Provider.YAHOO, ("_spf.mail.yahoo.com", "_spf.mail.aol.com")),
    (Provider.ZOHO, ("zoho.com", "zoho.eu", "zoho.in", "zoho.com.au", "zoho.jp", "zohomail.com")),
    (Provider.PROTON, ("_spf.protonmail.ch",)),
    (Provider.ICLOUD, ("icloud.com",)),
    (Provider.FASTMAIL, ("spf.messagingengine.com",)),
    (Provider.YANDEX, ("_spf.yandex.net",)),
    (Provider.MAIL_RU, ("_spf.mail.ru",)),
    (Provider.GMX, ("gmx.net", "web.de")),
)


@dataclass(frozen=True, slots=True)
class Hosting:
    """Who keeps a domain's mailboxes, as far as its MX and SPF records tell."""

    provider: Provider
    source: Literal["mx", "spf"]  # what recognised it
    mx_provider: Provider  # what the preferred MX host alone says (a gateway, "other", ...)

    @property
    def behind_gateway(self) -> bool:
        return self.mx_provider in GATEWAYS


def providers_in_spf(record: SpfRecord) -> tuple[Provider, ...]:
    """The providers whose SPF domains `record` includes (or redirects to), in its order."""
    found: list[Provider] = []
    for name in record.delegates_to:
        for provider, domains in SPF_DOMAINS:
            if provider not in found and any(_has_suffix(name, d) for d in domains):
                found.append(provider)
    return tuple(found)


def authorises(record: SpfRecord, provider: Provider) -> bool:
    """Whether `record` includes (or redirects to) `provider`'s SPF domain. Consumer and
    business Outlook share Microsoft's."""
    wanted = Provider.MICROSOFT if provider is Provider.MICROSOFT_B2C else provider
    return wanted in providers_in_spf(record)


def hosting(mx_hosts: Sequence[str], spf: SpfRecord | None) -> Hosting:
    """The provider of a domain from its MX hosts (preferred first) and its SPF record.

    The preferred MX decides when it belongs to a mailbox provider. When it is a filtering
    gateway or nobody we know (the domain's own server, say), the SPF record decides if it
    names exactly one mailbox provider; otherwise the MX's answer stands."""
    mx_provider = provider_from_mx(mx_hosts[0]) if mx_hosts else Provider.OTHER
    if mx_provider not in GATEWAYS and mx_provider is not Provider.OTHER:
        return Hosting(mx_provider, "mx", mx_provider)
    named = providers_in_spf(spf) if spf is not None else ()
    if len(named) == 1:
        return Hosting(named[0], "spf", mx_provider)
    return Hosting(mx_provider, "mx", mx_provider)


@dataclass(frozen=True)
class ProviderPolicy:
    """How much one SMTP session to a provider's MX may do."""

    max_rcpts_per_session: int
    one_domain_per_transaction: bool
    max_invalid_rcpts_per_session: int
    skip_catch_all: bool


# Postfix drops a client after ~10 soft / 20 hard errors (smtpd_soft/hard_error_limit), so stop
# well before that: a dropped session costs a reconnect and marks us as a harvester.
_DEFAULT = ProviderPolicy(
    max_rcpts_per_session=100,
    one_domain_per_transaction=False,
    max_invalid_rcpts_per_session=5,
    skip_catch_all=False,
)

_POLICIES: dict[Provider, ProviderPolicy] = {
    # Gmail answers 451 4.3.0 to a recipient of a second domain in one transaction; gmail.com
    # and Google-hosted domains are known not to be catch-all.
    Provider.GMAIL: ProviderPolicy(
        max_rcpts_per_session=100,
        one_domain_per_transaction=True,
        max_invalid_rcpts_per_session=5,
        skip_catch_all=True,
    ),
    # Consumer Outlook poisons the answers to every RCPT after the first in a session.
    Provider.MICROSOFT_B2C: ProviderPolicy(
        max_rcpts_per_session=1,
        one_domain_per_transaction=True,
        max_invalid_rcpts_per_session=1,
        skip_catch_all=True,
    ),
    # Yahoo answers "Excessive unknown recipients" early.
    Provider.YAHOO: ProviderPolicy(
        max_rcpts_per_session=100,
        one_domain_per_transaction=False,
        max_invalid_rcpts_per_session=3,
        skip_catch_all=True,
    ),
    Provider.SPAMEXPERTS: ProviderPolicy(
        max_rcpts_per_session=_DEFAULT.max_rcpts_per_session,
        one_domain_per_transaction=False,
        max_invalid_rcpts_per_session=_DEFAULT.max_invalid_rcpts_per_session,
        skip_catch_all=True,
    ),
}


def provider_from_mx(host: str) -> Provider:
    """The provider behind one MX host name (case-insensitive, trailing dot optional)."""
    name = _clean_host(host)
    for provider, suffixes in MX_SUFFIXES:
        if any(_has_suffix(name, suffix) for suffix in suffixes):
            return provider
    return Provider.OTHER


def limit_key(mx_host: str) -> str:
    """The key of the politeness budget `mx_host` shares.

    All MX hosts of one known provider share one budget (every Google-hosted domain counts
    against ``"gmail"``); any other host has its own, keyed by its lower-case name.
    """
    provider = provider_from_mx(mx_host)
    return _clean_host(mx_host) if provider is Provider.OTHER else provider.value


def policy_for(provider: Provider) -> ProviderPolicy:
    return _POLICIES.get(provider, _DEFAULT)


def _clean_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _has_suffix(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)
