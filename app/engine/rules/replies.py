"""Classify one SMTP reply, mostly the answer to ``RCPT TO``.

The phrase tables follow the facts Reacher's parser encodes (which words mean a disabled
account, a full inbox, an unknown user, a blocked client), re-expressed and corrected:

- a 4xx is never ``invalid`` (nor ``disabled``): it is ``temporary`` unless it says the inbox is
  full, that the mailbox takes mail at a limited rate, or that *we* are blocked. Reacher calls a
  greylisting reply invalid because it contains "address rejected".
- a reply that blocks *our* IP, reverse DNS, reputation, sender or policy standing is
  ``blocked`` (an unknown verdict, with a description when it names the IP or the reverse DNS),
  never ``invalid``. Reacher calls every ``5.7.1`` reply invalid, even "Client host rejected"
  and "... is blacklisted"; we call a ``5.7.x`` invalid only when its text says the mailbox
  does not exist.
- enhanced status codes count: ``5.1.0``/``5.1.1``/``5.1.6``/``5.1.10`` invalid, ``5.2.1``
  disabled, ``x.2.2`` full inbox, ``5.1.7``/``5.1.8`` (our sender) blocked. A 4xx about our
  sender is temporary (often our domain's DNS, or Yahoo's "excessive unknown recipients").

Text is matched lower-cased, with each line's first enhanced status code removed and the lines
joined by spaces, so a phrase wrapped across lines of a multi-line reply still matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    ACCEPT = "accept"
    HARD_FAIL = "hard_fail"
    TEMP_FAIL = "temp_fail"
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    DELIVERABLE = "deliverable"
    INVALID = "invalid"
    DISABLED = "disabled"
    FULL_INBOX = "full_inbox"
    BLOCKED = "blocked"  # the server blocks OUR ip/reputation/policy: unknown, never invalid
    TEMPORARY = "temporary"  # 4xx greylisting / try later: retry later, never invalid
    ERROR = "error"  # unrecognised: unknown


IP_BLACKLISTED = "IpBlacklisted"
NEEDS_RDNS = "NeedsRDNS"


@dataclass(frozen=True, slots=True)
class ReplyVerdict:
    code: int
    message: str
    category: Category  # 2xx accept, 5xx hard_fail, 4xx temp_fail, else unknown
    outcome: Outcome
    description: str | None  # "IpBlacklisted" | "NeedsRDNS" | None
    error_message: str  # Reacher's error string ("permanent: ..." / "transient: ...")

    @property
    def retryable(self) -> bool:
        return self.outcome is Outcome.TEMPORARY


# The mailbox exists but takes mail at a limited rate (Gmail's 4.2.1).
RATE_LIMITED_MAILBOX: tuple[str, ...] = ("receiving mail at a rate", "receiving mail too quickly")

# Our IP has no (matching) reverse DNS.
NEEDS_RDNS_PHRASES: tuple[str, ...] = (
    "reverse dns",
    "reverse hostname",
    "reverse host name",
    "reverse lookup",
    "reverse-lookup",
    "rdns",
    "ptr record",
    "no ptr",
    "cannot find your hostname",
    "hostname lookup failed",
)

# Connection or rate throttling of our client: a 4xx saying this is temporary, not a block.
THROTTLED: tuple[str, ...] = (
    "too many connections",
    "too many concurrent",
    "too many sessions",
    "rate limit",
    "rate-limit",
    "ratelimit",
    "unusual rate",
    "temporarily deferred",
)

# Our IP or reputation is blocked or listed.
IP_BLOCKED: tuple[str, ...] = (
    "blacklist",
    "black list",
    "blocklist",
    "block list",
    "block-list",
    "denylist",
    "deny list",
    "blocked",
    "spamhaus",
    "uceprotect",
    "barracuda",
    "senderbase",
    "reputation",
    "banned sending ip",
    "sending ip",
    "ip address is",
    "not accepted from this ip",
    "relay access denied",
    "client host rejected",
)
_IP_BLOCKED_WORDS = re.compile(r"\b(?:(?:rbl|dnsbl|dnsrbl)s?|sorbs|spamcop|sbrs)\b")

# Our sender address or domain, or our authentication, is refused: nothing about the mailbox.
SENDER_REFUSED: tuple[str, ...] = (
    "sender address rejected",
    "sender rejected",
    "sender verify failed",
    "sender verification failed",
    "sender domain",
    "invalid sender",
    "sender not allowed",
    "sender is not allowed",
    "authentication required",
    "not authorized to send",
)
_SENDER_REFUSED_WORDS = re.compile(r"\b(?:spf|dmarc|dkim)\b")

DISABLED_PHRASES: tuple[str, ...] = (
    "disabled",
    "discontinued",
    "inactive",
    "deactivated",
    "suspended",
    "no longer active",
    "account has been closed",
    "account is closed",
    "account expired",
    "mailbox is frozen",
)

FULL_INBOX_PHRASES: tuple[str, ...] = (
    "mailbox full",
    "mailbox is full",
    "inbox is full",
    "full mailbox",
    "over quota",
    "overquota",
    "over the quota",
    "quota exceeded",
    "exceeded quota",
    "exceeds quota",
    "exceeded storage",
    "storage allocation",
    "out of storage",
    "insufficient storage",
    "insufficient system storage",
    "insufficient disk space",
    "has too many messages",
    "mailbox size limit",
)

# The mailbox does not exist, said plainly: invalid even under a 5.7.x (policy) status.
MAILBOX_MISSING: tuple[str, ...] = (
    "does not exist",
    "doesn't exist",
    "doesn’t exist",
    "dosn't exist",
    "is not exist",
    "no such user",
    "no such person",
    "no such recipient",
    "no such mailbox",
    "no such address",
    "no such account",
    "no mailbox here",
    "user unknown",
    "unknown user",
    "recipient unknown",
    "unknown recipient",
    "mailbox unknown",
    "unknown mailbox",
    "address unknown",
    "unknown address",
    "unknown local part",
    "utilisateur inconnu",
    "unbekannt",
    "user not found",
    "recipient not found",
    "recipientnotfound",
    "mailbox not found",
    "address not found",
    "account not found",
    "could not be found",
    "not a valid mailbox",
    "invalid mailbox",
    "invalid recipient",
    "unrouteable address",
    "unroutable address",
    "not handled by this system",
    "does not have an account",
    "doesn't have an account",
    "doesn’t have an account",
    "user not local",
)

# Usually the mailbox is missing, but too generic to trust under a 5.7.x (policy) status.
MAILBOX_PROBABLY_MISSING: tuple[str, ...] = (
    "address rejected",
    "recipient rejected",
    "mailbox unavailable",
    "mailbox is unavailable",
    "invalid address",
    "address error",
    "no longer available",
)

INVALID_STATUSES = frozenset({"5.1.0", "5.1.1", "5.1.6", "5.1.10"})
DISABLED_STATUSES = frozenset({"5.2.1"})
FULL_INBOX_STATUSES = frozenset({"4.2.2", "5.2.2"})
SENDER_STATUSES = frozenset({"5.1.7", "5.1.8"})

# An enhanced status code (RFC 3463) anywhere in the text, not part of an IP address.
_STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\w|\.\d)")


def classify_reply(code: int, message: str) -> ReplyVerdict:
    """Classify one reply; `message` is its text, lines joined by "\\n", code stripped."""
    lines = _reply_lines(code, message)
    status = _enhanced_status(code, lines)
    text = " ".join(_STATUS.sub("", line, count=1).strip() for line in lines).lower()
    outcome, description = _outcome(code, status, text)
    return ReplyVerdict(
        code=code,
        message=message,
        category=category_for(code),
        outcome=outcome,
        description=description,
        error_message=("permanent: " if code >= 500 else "transient: ") + "; ".join(lines),
    )


def category_for(code: int) -> Category:
    """Seed 001's coarse category: 2xx accept, 4xx temp_fail, 5xx hard_fail, else unknown."""
    if 200 <= code < 300:
        return Category.ACCEPT
    if 400 <= code < 500:
        return Category.TEMP_FAIL
    if 500 <= code < 600:
        return Category.HARD_FAIL
    return Category.UNKNOWN


def _outcome(code: int, status: str | None, text: str) -> tuple[Outcome, str | None]:
    if 200 <= code < 300:
        return Outcome.DELIVERABLE, None
    if not 400 <= code < 600:
        return Outcome.ERROR, None
    if _has(text, RATE_LIMITED_MAILBOX):
        return Outcome.DELIVERABLE, None
    if _has(text, NEEDS_RDNS_PHRASES):
        return Outcome.BLOCKED, NEEDS_RDNS
    if code < 500 and _has(text, THROTTLED):
        return Outcome.TEMPORARY, None
    if _has(text, IP_BLOCKED) or _IP_BLOCKED_WORDS.search(text):
        return Outcome.BLOCKED, IP_BLACKLISTED
    if code < 500:
        if status in FULL_INBOX_STATUSES or _has(text, FULL_INBOX_PHRASES):
            return Outcome.FULL_INBOX, None
        return Outcome.TEMPORARY, None
    return _permanent_outcome(status, text), None


def _permanent_outcome(status: str | None, text: str) -> Outcome:
    if _refuses_sender(status, text):
        return Outcome.BLOCKED  # our sender or authentication, not the mailbox
    # Disabled before full inbox: "over quota and inactive" is a dead account.
    if status in DISABLED_STATUSES or _has(text, DISABLED_PHRASES):
        return Outcome.DISABLED
    if status in FULL_INBOX_STATUSES or _has(text, FULL_INBOX_PHRASES):
        return Outcome.FULL_INBOX
    policy = status is not None and status.startswith("5.7.")
    if (
        status in INVALID_STATUSES
        or _has(text, MAILBOX_MISSING)
        or (not policy and _has(text, MAILBOX_PROBABLY_MISSING))
    ):
        return Outcome.INVALID
    if policy:
        return Outcome.BLOCKED
    return Outcome.ERROR


def _refuses_sender(status: str | None, text: str) -> bool:
    return (
        status in SENDER_STATUSES
        or _has(text, SENDER_REFUSED)
        or _SENDER_REFUSED_WORDS.search(text) is not None
    )


def _reply_lines(code: int, message: str) -> list[str]:
    """The reply's lines, each without a leading copy of the reply code ("550-", "550 ")."""
    if not message:
        return []
    prefix = str(code)
    lines = []
    for raw in message.split("\n"):
        line = raw.rstrip("\r")
        if line.startswith(prefix) and line[len(prefix) : len(prefix) + 1] in ("", " ", "-"):
            line = line[len(prefix) + 1 :]
        lines.append(line)
    return lines


def _enhanced_status(code: int, lines: list[str]) -> str | None:
    """The first enhanced status code whose class matches the reply code's, e.g. "5.1.1"."""
    reply_class = str(code)[:1]
    for line in lines:
        for match in _STATUS.finditer(line):
            if match.group(1) == reply_class:
                return ".".join(match.groups())
    return None


def _has(text: str, phrases: tuple[str, ...]) -> bool:
    return any(phrase in text for phrase in phrases)
