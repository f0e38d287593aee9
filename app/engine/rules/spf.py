"""A domain's SPF record (RFC 7208), read from its TXT records without evaluating it.

We only need to know which other domains' policies a record delegates to (``include:`` and
``redirect=``): those names say which mail providers the domain lets send for it
(``include:_spf.google.com`` is Google Workspace). Nothing here touches the network; the
engine makes one TXT query for the domain itself and never follows the includes.

The record is split into its terms as RFC 7208 §4.6 defines them (space-separated; a
mechanism with an optional qualifier ``+ - ~ ?``; a modifier ``name=value``). Names are kept
as written, lower-cased and without a trailing dot; a name with a macro (``%{i}...``) is kept
too, and simply matches no provider. No maintained light library does just this: pyspf and
checkdmarc evaluate records over the network, which the probe must not do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_VERSION = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)
_QUALIFIERS = "+-~?"


@dataclass(frozen=True, slots=True)
class SpfRecord:
    text: str
    includes: tuple[str, ...]  # include: targets, in order
    redirect: str | None  # the redirect= modifier's domain
    all_qualifier: str | None  # "-", "~", "?" or "+" of the `all` mechanism, if any

    @property
    def delegates_to(self) -> tuple[str, ...]:
        """Every domain whose policy this one uses: its includes, then its redirect."""
        return (*self.includes, *((self.redirect,) if self.redirect else ()))


@dataclass(frozen=True, slots=True)
class SpfLookup:
    """What a domain's TXT records say about SPF."""

    record: SpfRecord | None  # the record, when there is exactly one
    problem: str | None = None  # e.g. several records (RFC 7208 §4.5: a permerror)

    @property
    def found(self) -> bool:
        return self.record is not None


def is_spf(text: str) -> bool:
    """Whether a TXT record is an SPF record: ``v=spf1`` alone or followed by a space."""
    return bool(_VERSION.match(text.strip()))


def parse(text: str) -> SpfRecord:
    """The terms of one SPF record (which must start with ``v=spf1``)."""
    terms = text.split()[1:]
    includes: list[str] = []
    redirect: str | None = None
    all_qualifier: str | None = None
    for term in terms:
        name, equals, value = term.partition("=")
        if equals and ":" not in name and "/" not in name:
            if name.lower() == "redirect" and value:
                redirect = _domain(value)
            continue  # exp= and unknown modifiers change nothing here
        qualifier = term[0] if term[0] in _QUALIFIERS else "+"
        mechanism = term[1:] if term[0] in _QUALIFIERS else term
        kind, _, target = mechanism.partition(":")
        match kind.lower():
            case "include" if target:
                includes.append(_domain(target))
            case "all":
                all_qualifier = qualifier
            case _:
                pass
    return SpfRecord(
        text=text.strip(), includes=tuple(includes), redirect=redirect, all_qualifier=all_qualifier
    )


def find(texts: Iterable[str]) -> SpfLookup:
    """The domain's SPF record among its TXT records: none, one, or several (an error)."""
    records = [text for text in texts if is_spf(text)]
    if not records:
        return SpfLookup(record=None)
    if len(records) > 1:
        return SpfLookup(record=None, problem=f"{len(records)} SPF records (RFC 7208 allows one)")
    return SpfLookup(record=parse(records[0]))


def _domain(name: str) -> str:
    return name.strip().lower().rstrip(".")
