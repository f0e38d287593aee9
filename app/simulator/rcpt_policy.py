"""What a fake MX server answers to RCPT TO: pure decisions, plus the greylist table."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

from app.simulator.behaviours import Behaviour, Mailbox
from app.simulator.names import split_address

__all__ = ["Greylist", "RcptReply", "decide_rcpt", "two_lines"]

Book = Mapping[str, Mailbox]
"""The known local parts (lower-case) of one domain."""

TOO_MANY_INVALID = "421 4.7.0 Too many invalid recipients"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections"
RATE_LIMITED_TEXT = (
    "The user you are trying to contact is receiving mail at a rate that prevents additional "
    "messages from being delivered."
)
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


@dataclass(frozen=True)
class RcptReply:
    text: str
    accepted: bool = False
    unknown: bool = False
    """The recipient does not exist (counts towards `max_invalid_rcpts`)."""


class Greylist:
    """First-seen times of (client ip, MAIL FROM, RCPT) triplets; safe to reset from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first_seen: dict[tuple[str, str, str], float] = {}

    def passes(self, triplet: tuple[str, str, str], *, now: float, delay: float) -> bool:
        """Record the triplet if new; True once `delay` seconds have passed since first seen."""
        key = (triplet[0], triplet[1].lower(), triplet[2].lower())
        with self._lock:
            first = self._first_seen.get(key)
            if first is None:
                self._first_seen[key] = now
                return False
        return now - first >= delay

    def reset(self) -> None:
        with self._lock:
            self._first_seen.clear()


def decide_rcpt(
    address: str,
    *,
    behaviour: Behaviour,
    books: Mapping[str, Book],
    client_ip: str,
    mail_from: str,
    greylist: Greylist,
    now: float,
) -> RcptReply:
    """The reply to ``RCPT TO:<address>`` on a server with this behaviour serving `books`.

    `books` maps each served domain (ASCII, lower-case) to its known local parts. With
    `Behaviour.multiline_rcpt` the reply's text is wrapped over two lines (`two_lines`).
    """
    reply = _decide(
        address,
        behaviour=behaviour,
        books=books,
        client_ip=client_ip,
        mail_from=mail_from,
        greylist=greylist,
        now=now,
    )
    if behaviour.multiline_rcpt:
        return replace(reply, text=two_lines(reply.text))
    return reply


def two_lines(text: str) -> str:
    """One reply over two lines (CRLF between them), its text wrapped at the middle word, the
    enhanced status code repeated: ``550 5.1.1 <a@b>: User unknown`` → ``550-5.1.1 <a@b>:`` and
    ``550 5.1.1 User unknown``. A one-word text is said twice."""
    code, _, rest = text.partition(" ")
    status, _, message = rest.partition(" ")
    if not _ENHANCED.fullmatch(status):
        status, message = "", rest
    words = message.split(" ")
    half = max(1, len(words) // 2)
    first, second = " ".join(words[:half]), " ".join(words[half:]) or message
    status = f"{status} " if status else ""
    return f"{code}-{status}{first}\r\n{code} {status}{second}"


def _decide(
    address: str,
    *,
    behaviour: Behaviour,
    books: Mapping[str, Book],
    client_ip: str,
    mail_from: str,
    greylist: Greylist,
    now: float,
) -> RcptReply:
    if behaviour.ip_blocked:
        return RcptReply(
            f"554 5.7.1 Service unavailable; client host [{client_ip}] blocked using "
            "zen.spamhaus.org"
        )
    parts = split_address(address)
    if parts is None:
        return RcptReply(f"501 5.1.3 <{address}>: Bad recipient address syntax")
    local, domain = parts
    book = books.get(domain)
    if book is None:
        return RcptReply(f"550 5.7.1 <{address}>: Relaying denied")
    if behaviour.greylist_seconds is not None and not greylist.passes(
        (client_ip, mail_from, address), now=now, delay=behaviour.greylist_seconds
    ):
        return RcptReply(
            f"451 4.7.1 <{address}>: Recipient address rejected: Greylisted, please try again later"
        )
    mailbox = book.get(local)
    if mailbox is Mailbox.FULL:
        return RcptReply(f"552 5.2.2 <{address}>: Mailbox full, over quota")
    if mailbox is Mailbox.DISABLED:
        return RcptReply(f"550 5.2.1 <{address}>: Mailbox disabled, not accepting messages")
    if mailbox is Mailbox.OVER_QUOTA:
        return RcptReply(f"452 4.2.2 <{address}>: Mailbox full")
    if mailbox is Mailbox.RATE_LIMITED:
        return RcptReply(f"450 4.2.1 {RATE_LIMITED_TEXT}")
    if mailbox is Mailbox.OK or behaviour.catch_all:
        return RcptReply("250 2.1.5 Ok", accepted=True)
    return RcptReply(
        f"550 5.1.1 <{address}>: Recipient address rejected: User unknown", unknown=True
    )
