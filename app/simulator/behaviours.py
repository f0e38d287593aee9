"""What a fake MX server does, and the state of the mailboxes it serves.

A `Behaviour` describes one fake MX server; its options combine freely (a greylisting server
behind a tarpit that requires STARTTLS is fine). A `Mailbox` is the state of one known
recipient of a domain. The replies that follow from both are decided in `rcpt_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

__all__ = ["Behaviour", "Mailbox", "Segments"]

Segments = Literal["per_line", "per_reply", "per_flight", "split"]
"""How a server cuts its replies into writes (so TCP segments); see `Behaviour.segments`."""


class Mailbox(StrEnum):
    """State of a known recipient."""

    OK = "ok"
    """RCPT → 250 2.1.5."""
    FULL = "full"
    """RCPT → 552 5.2.2 Mailbox full, over quota."""
    DISABLED = "disabled"
    """RCPT → 550 5.2.1 Mailbox disabled, not accepting messages."""
    OVER_QUOTA = "over_quota"
    """RCPT → 452 4.2.2 Mailbox full: a full inbox said with a temporary code."""
    RATE_LIMITED = "rate_limited"
    """RCPT → 450 4.2.1 The user you are trying to contact is receiving mail at a rate that
    prevents additional messages from being delivered (Gmail's words: the mailbox exists)."""


@dataclass(frozen=True)
class Behaviour:
    """How one fake MX server behaves.

    The replies come in this order of precedence for RCPT: `ip_blocked`, relaying denied (a
    domain the server does not serve), greylisting, then the mailbox (`catch_all` accepts
    every local part that is not a known mailbox in another state). How the replies reach the
    client (`segments`, `multiline_rcpt`, `banner_lines`, `slow_banner`) never changes what
    they say.
    """

    catch_all: bool = False
    """Every RCPT of a served domain gets 250 (known mailboxes in another state keep their
    reply)."""
    greylist_seconds: float | None = None
    """First RCPT of a (client ip, MAIL FROM, RCPT) triplet → 451 4.7.1 greylisted; the same
    triplet is answered normally once this many seconds have passed since it was first seen."""
    ip_blocked: bool = False
    """RCPT → 554 5.7.1 … blocked using zen.spamhaus.org."""
    tarpit_seconds: float = 0.0
    """Delay before the 220 banner."""
    refuse: bool = False
    """Nothing listens on this server's IP: connections are refused."""
    starttls: bool = True
    """Advertise STARTTLS (a certificate issued by the world's own trustme CA)."""
    require_starttls: bool = False
    """530 5.7.0 Must issue a STARTTLS command first, until TLS (implies `starttls`)."""
    max_connections: int | None = None
    """Past this many simultaneous connections: banner 421 4.7.0 Too many connections, close."""
    max_invalid_rcpts: int | None = None
    """Past this many unknown-recipient RCPTs in one session: 421 4.7.0, close."""
    latency: float = 0.0
    """Seconds per round trip: before the banner and before the first reply to each write of
    commands (the replies to pipelined commands follow at once, as over a real network)."""
    pipelining: bool = True
    """Advertise PIPELINING (pipelined commands are always answered in order)."""
    segments: Segments = "per_line"
    """How replies are cut into writes, each write leaving as its own TCP segment:

    - ``"per_line"``: every line its own write, a multi-line reply (EHLO) in several;
    - ``"per_reply"``: every reply, all its lines, in one write;
    - ``"per_flight"``: the replies to all the commands that came in one go (a pipelined
      flight) held back and written together, once no further command is waiting;
    - ``"split"``: every reply (the banner too) in two writes `split_pause` seconds apart,
      cut by turns in the middle of the reply code, in the middle of the reply, and between
      its last CR and LF.
    """
    split_pause: float = 0.02
    """Seconds between the two writes of a ``"split"`` reply."""
    multiline_rcpt: bool = False
    """Every RCPT reply in two lines, its text wrapped between them
    (``550-5.1.1 <a@b>: Recipient address`` / ``550 5.1.1 rejected: User unknown``; a one-word
    text is said twice: ``250-2.1.5 Ok`` / ``250 2.1.5 Ok``)."""
    banner_lines: int = 1
    """Lines of the 220 banner (``220-...`` continuation lines, then ``220 ...``)."""
    slow_banner: float = 0.0
    """The banner trickles out in four writes this many seconds apart (cut after its first
    byte, in the reply code, in the middle, before the last LF), after any `tarpit_seconds`:
    a slow server, not a tarpit (keep 3 × this under a client's connect timeout)."""

    def __post_init__(self) -> None:
        for name in ("tarpit_seconds", "latency", "split_pause", "slow_banner"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.segments not in get_args(Segments):
            raise ValueError(f"segments must be one of {get_args(Segments)}, not {self.segments!r}")
        if self.banner_lines < 1:
            raise ValueError("banner_lines must be >= 1")
        if self.greylist_seconds is not None and self.greylist_seconds < 0:
            raise ValueError("greylist_seconds must be >= 0")
        if self.max_connections is not None and self.max_connections < 0:
            raise ValueError("max_connections must be >= 0")
        if self.max_invalid_rcpts is not None and self.max_invalid_rcpts < 0:
            raise ValueError("max_invalid_rcpts must be >= 0")

    @property
    def tls(self) -> bool:
        """Whether the server offers STARTTLS at all."""
        return self.starttls or self.require_starttls
