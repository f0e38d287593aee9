"""The domains of a simulated world: what DNS says about each, and who receives its mail."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from app.simulator.behaviours import Mailbox

__all__ = ["Domain", "DomainKind", "mailbox_book"]


class DomainKind(StrEnum):
    """What the DNS answers for a domain."""

    MX = "mx"
    """MX records pointing at fake MX hosts."""
    NULL_MX = "null_mx"
    """RFC 7505 null MX (``0 .``): the domain accepts no mail."""
    A_ONLY = "a_only"
    """No MX, one A record: the implicit MX (RFC 5321 §5.1)."""
    NXDOMAIN = "nxdomain"
    """The name does not exist."""
    SERVFAIL = "servfail"
    """Every query fails with SERVFAIL."""
    TIMEOUT = "timeout"
    """Queries are never answered."""
    NO_MAIL = "no_mail"
    """The domain exists but has no MX and no A/AAAA record."""


@dataclass(frozen=True)
class Domain:
    name: str
    """ASCII (punycode), lower-case, no trailing dot."""
    kind: DomainKind
    mx: tuple[tuple[int, str], ...] = ()
    """(preference, MX host name) pairs, as given."""
    a: str | None = None
    mailboxes: Mapping[str, Mailbox] = field(default_factory=dict)
    """Known local parts, lower-case."""
    ttl: int = 300
    txt: tuple[str, ...] = ()
    """TXT records (an SPF record is one: ``"v=spf1 include:_spf.google.com ~all"``)."""


def mailbox_book(mailboxes: Mapping[str, Mailbox] | Iterable[str]) -> dict[str, Mailbox]:
    """Known local parts, lower-cased; a plain iterable of names means every mailbox is OK."""
    if isinstance(mailboxes, Mapping):
        return {str(local).lower(): Mailbox(state) for local, state in mailboxes.items()}
    if isinstance(mailboxes, str):
        raise TypeError("mailboxes must be an iterable of local parts, not a string")
    return {local.lower(): Mailbox.OK for local in mailboxes}
