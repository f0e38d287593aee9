"""Typo suggestions for the domains of the big mailbox providers.

``test@gmali.com`` → ``test@gmail.com``. Distance is the optimal-string-alignment edit distance
(rapidfuzz), so a swapped pair of letters (``gmali``, ``hotmial``) counts as one edit.

Where we differ from Reacher, which suggests the nearest of its list at distance < 3 even when
the domain is itself a real provider (``ymail.com`` → ``gmail.com``; ``gmail.com`` suggests
itself): we never suggest for a domain that is a known real provider (our list below, or any
domain of the free-mail list in `lists.is_b2c`), and a short provider domain (7 characters or
fewer, such as ``aol.com`` or ``gmx.de``) only draws suggestions at distance 1, because at
distance 2 nearly every short domain (``cox.com``, ``go.com``) would look like a typo.
"""

from __future__ import annotations

from rapidfuzz.distance import OSA

from app.engine.rules import lists

# Suggestion targets, most used first: on a tie the first one wins.
SUGGESTION_TARGETS: tuple[str, ...] = (
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
    "live.com",
    "msn.com",
    "protonmail.com",
    "proton.me",
    "googlemail.com",
    "yandex.ru",
    "yandex.com",
    "mail.ru",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "t-online.de",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "bellsouth.net",
    "hotmail.co.uk",
    "yahoo.co.uk",
    "btinternet.com",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "laposte.net",
    "libero.it",
    "qq.com",
    "163.com",
    "naver.com",
    "zoho.com",
    "fastmail.com",
)

# Real provider domains that are close to a target but are not typos. Most are also in the
# free-mail list; these are kept here so the rule does not depend on that list's coverage.
_ALSO_REAL: frozenset[str] = frozenset(
    {
        "ymail.com",
        "rocketmail.com",
        "outlook.fr",
        "outlook.de",
        "outlook.es",
        "outlook.it",
        "hotmail.fr",
        "hotmail.de",
        "hotmail.it",
        "hotmail.es",
        "live.fr",
        "live.de",
        "live.co.uk",
        "me.com",
        "mac.com",
        "protonmail.ch",
        "pm.me",
        "mail.com",
        "email.com",
        "gmx.at",
        "gmx.ch",
        "yandex.ua",
        "bk.ru",
        "inbox.ru",
        "list.ru",
        "126.com",
        "tutanota.com",
        "tuta.io",
    }
)
_KNOWN_REAL: frozenset[str] = frozenset(SUGGESTION_TARGETS) | _ALSO_REAL

_SHORT_DOMAIN = 7  # characters; such targets only draw suggestions at distance 1
_MAX_DISTANCE = 2


def suggest_domain(username: str, domain: str) -> str | None:
    """Return ``username@<provider domain>`` when `domain` looks like a typo of one, else None."""
    candidate = domain.lower().rstrip(".")
    if not candidate or candidate in _KNOWN_REAL or lists.is_b2c(candidate):
        return None
    best: str | None = None
    best_distance = _MAX_DISTANCE + 1
    for target in SUGGESTION_TARGETS:
        allowed = 1 if len(target) <= _SHORT_DOMAIN else _MAX_DISTANCE
        distance = OSA.distance(candidate, target, score_cutoff=allowed)
        if 0 < distance <= allowed and distance < best_distance:
            best, best_distance = target, distance
    return None if best is None else f"{username}@{best}"
