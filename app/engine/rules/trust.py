"""Which mail providers are trusted, and the optional policy that only trusts those.

Seed 003's sign-up filter wants addresses hosted by established providers only. We report,
for every address, whether its provider (`providers.hosting`) is on the trusted list; the
verdict changes only under the policy ``trusted_providers_only``, which makes an address on
any other provider at best ``risky``.

A provider recognised only from the SPF record counts as trusted behind a known filtering
gateway (the gateway hands mail to the mailboxes the SPF names), but not behind the domain's
own or an unknown MX: anyone can write ``include:_spf.google.com`` into a record, and mail to
such a domain is received by its own server, wherever it sends from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from app.engine.model import Reachable, SpfDetails
from app.engine.rules.providers import (
    SPF_DOMAINS,
    Hosting,
    Provider,
    authorises,
    hosting,
    providers_in_spf,
)
from app.engine.rules.spf import SpfLookup

DEFAULT_TRUSTED: tuple[Provider, ...] = (
    Provider.GMAIL,  # Gmail and Google Workspace
    Provider.MICROSOFT,  # Microsoft 365
    Provider.MICROSOFT_B2C,  # Outlook.com, Hotmail, Live, MSN
    Provider.YAHOO,  # Yahoo, and AOL (hosted on Yahoo's MX)
    Provider.ZOHO,
    Provider.PROTON,
    Provider.ICLOUD,
    Provider.FASTMAIL,
)
"""Seed 003's list."""

# Names people use for providers, as MXPROBE_TRUSTED_PROVIDERS may give them.
ALIASES: dict[str, tuple[Provider, ...]] = {
    "google": (Provider.GMAIL,),
    "google_workspace": (Provider.GMAIL,),
    "outlook": (Provider.MICROSOFT, Provider.MICROSOFT_B2C),
    "hotmail": (Provider.MICROSOFT_B2C,),
    "microsoft_365": (Provider.MICROSOFT,),
    "office365": (Provider.MICROSOFT,),
    "aol": (Provider.YAHOO,),
    "protonmail": (Provider.PROTON,),
    "apple": (Provider.ICLOUD,),
    "web_de": (Provider.GMX,),
}


_NAMES = frozenset(p.value for p in Provider if p is not Provider.OTHER)


class Policy(StrEnum):
    """How the trusted list bears on the verdict."""

    NONE = "none"  # reported only
    TRUSTED_PROVIDERS_ONLY = "trusted_providers_only"


@dataclass(frozen=True, slots=True)
class TrustedList:
    """Trusted providers, and MX host domains trusted by name (an operator's own servers)."""

    providers: frozenset[Provider]
    mx_domains: tuple[str, ...] = ()

    def trusts(self, hosting: Hosting, *, mx_hosts: Iterable[str]) -> bool:
        if hosting.provider in self.providers and (
            hosting.source == "mx" or hosting.behind_gateway
        ):
            return True
        hosts = [h.strip().lower().rstrip(".") for h in mx_hosts]
        return any(h == d or h.endswith("." + d) for h in hosts[:1] for d in self.mx_domains)


def entry_problem(entry: str) -> str | None:
    """Why an entry of MXPROBE_TRUSTED_PROVIDERS means nothing, or None."""
    name = entry.strip().lower().rstrip(".")
    if name in _NAMES or name in ALIASES:
        return None
    if "." in name and all(label.replace("-", "").isalnum() for label in name.split(".")):
        return None  # an MX host domain
    known = ", ".join(sorted({*_NAMES, *ALIASES}))
    return (
        f"{entry!r} is neither a provider ({known}) nor a domain name of MX hosts "
        "(e.g. mail.example.com)"
    )


def trusted_list(extra: Iterable[str] = ()) -> TrustedList:
    """The default list plus `extra` entries: provider names, their aliases, or MX host
    domains. Raises ValueError on an entry that is none of these."""
    providers = set(DEFAULT_TRUSTED)
    domains: list[str] = []
    for entry in extra:
        if (problem := entry_problem(entry)) is not None:
            raise ValueError(problem)
        name = entry.strip().lower().rstrip(".")
        if name in ALIASES:
            providers.update(ALIASES[name])
        elif name in _NAMES:
            providers.add(Provider(name))
        else:
            domains.append(name)
    return TrustedList(frozenset(providers), tuple(domains))


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    verdict: Reachable
    reason: str | None  # why the policy changed the verdict; None when it did not


def apply_policy(
    policy: Policy, verdict: Reachable, *, trusted: bool | None, describe: str
) -> PolicyOutcome:
    """The verdict under `policy`. `trusted` is None when no provider could be recognised (no
    MX found): the policy then has nothing to say. Under ``trusted_providers_only`` an
    untrusted provider turns ``safe`` and ``unknown`` into ``risky``; ``invalid`` stays."""
    if policy is Policy.NONE or trusted is None or trusted:
        return PolicyOutcome(verdict, None)
    if verdict in (Reachable.SAFE, Reachable.UNKNOWN):
        return PolicyOutcome(
            Reachable.RISKY, f"policy trusted_providers_only: {describe} is not a trusted provider"
        )
    return PolicyOutcome(verdict, None)


@dataclass(frozen=True, slots=True)
class Assessment:
    """What `misc` reports of a domain's provider and SPF record."""

    hosting: Hosting | None  # None: no MX to recognise a provider from
    trusted: bool | None
    spf: SpfDetails | None  # None: SPF not looked up


def assess(
    mx_hosts: Sequence[str],
    spf: SpfLookup | None,
    *,
    spf_error: str | None = None,
    trusted: TrustedList,
) -> Assessment:
    """The provider behind `mx_hosts` (preferred first; empty when the domain has none), whether
    it is trusted, and what the SPF record (`spf`, or the lookup's `spf_error`) says of it."""
    record = spf.record if spf is not None else None
    found = hosting(mx_hosts, record) if mx_hosts else None
    is_trusted = trusted.trusts(found, mx_hosts=mx_hosts) if found is not None else None
    details: SpfDetails | None = None
    if spf_error is not None:
        details = SpfDetails(record_found=None, authorises_provider=None, error=spf_error)
    elif spf is not None:
        checkable = found is not None and _has_spf_domain(found.provider)
        details = SpfDetails(
            record_found=spf.found or spf.problem is not None,
            authorises_provider=(
                (record is not None and authorises(record, found.provider))
                if checkable and found is not None and spf.problem is None
                else None
            ),
            providers=[p.value for p in providers_in_spf(record)] if record else [],
            error=spf.problem,
        )
    return Assessment(found, is_trusted, details)


def _has_spf_domain(provider: Provider) -> bool:
    wanted = Provider.MICROSOFT if provider is Provider.MICROSOFT_B2C else provider
    return any(p is wanted for p, _ in SPF_DOMAINS)
