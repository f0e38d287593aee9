"""Timeouts that fit what an MX group has been seen to do (seed 001's O06 behaviour cache).

The configured timeouts must suit the slowest server we may meet, so for most servers they are
far too long: a server that answers each command in 80 ms and then stops answering holds one
of its few session slots, and the check, for the whole `MXPROBE_SMTP_TIMEOUT`. And a tarpit,
a server that delays its banner on purpose, holds them for the whole connect timeout on every
attempt. What every process has observed of a group (`MxStats`, shared through PostgreSQL)
lets us give up sooner on both, and only ever sooner: an adapted timeout is never longer than
the configured one, and without enough evidence the configured ones stand.

The counts are recent counts: each observation counts 1 when made and half as much every
`HALF_LIFE` seconds after, so a group that tarpitted an hour ago and behaves now is trusted
again, with no timestamps to keep. The latency is the mean of the replies weighted the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

HALF_LIFE = 900.0
"""Seconds after which an observation counts half. Long enough to span many sessions to a
group, short enough that a group stops being treated as a tarpit within the hour it stops."""

MIN_REPLIES = 5.0
"""Recent replies needed before the latency is trusted: a mean of one or two is noise."""

LATENCY_MULTIPLE = 10.0
"""The command timeout is at least this many typical replies long: one reply may be far slower
than the mean (a recipient lookup on a cold backend), and cutting it off costs a verdict."""

COMMAND_FLOOR = 5.0
"""Never less than this per command, however fast the group: servers that verify recipients
or our sender by a callout take a few seconds on those replies and nowhere else."""

TIMEOUT_SHARE = 0.01
"""When more than this share of recent replies timed out, the replies we saw understate the
slow ones, and shortening would only add timeouts: the configured command timeout stands."""

TARPIT_BANNER = 8.0
"""A banner slower than this counts as a tarpit (callers report it with `observe_tarpit`), as
does one that never came. Postfix's postscreen holds its banner about 6 s by design
(postscreen_greet_wait), so that much is an honest server, not a tarpit."""

TARPITS = 1.5
"""Recent tarpits that make a group a tarpit: more than one, since one slow banner can be the
network. Two count 1.5 until they are about 6 minutes old (0.4 half-life), three until about
15 minutes (one half-life); a threshold of exactly 2 would expire two at once."""

TARPIT_CONNECT = TARPIT_BANNER
"""The connect timeout (connect and banner) for a tarpit. Equal to `TARPIT_BANNER`, so a
timeout under it is exactly a slow banner: the short timeout neither hides a tarpit that
stopped nor invents one."""


@dataclass(frozen=True, slots=True)
class MxStats:
    """What was recently seen of one MX group (`providers.limit_key`), in recent counts."""

    replies: float = 0.0  # replies, or pipelined flights of replies, that came
    latency_ewma: float | None = None  # seconds per reply, weighted by recency
    timeouts: float = 0.0  # commands that got no reply in time
    busy: float = 0.0  # 421 "too many connections" or busy banners
    tarpits: float = 0.0  # banners slower than TARPIT_BANNER, or that never came

    @property
    def tarpitting(self) -> bool:
        return self.tarpits >= TARPITS


def merged(first: MxStats, second: MxStats) -> MxStats:
    """Two views of one group as one: counts add, latencies average weighted by replies."""
    replies = first.replies + second.replies
    weighted = [(s.latency_ewma, s.replies) for s in (first, second) if s.latency_ewma is not None]
    weight = sum(w for _, w in weighted)
    if weight > 0:
        latency: float | None = sum(value * w for value, w in weighted) / weight
    else:
        latency = weighted[0][0] if weighted else None
    return MxStats(
        replies=replies,
        latency_ewma=latency,
        timeouts=first.timeouts + second.timeouts,
        busy=first.busy + second.busy,
        tarpits=first.tarpits + second.tarpits,
    )


def adapted_timeouts(
    stats: MxStats | None, *, connect: float, command: float
) -> tuple[float, float]:
    """(connect timeout, command timeout) for a group, given the configured ones.

    A tarpit gets `TARPIT_CONNECT` and `COMMAND_FLOOR`. A group that answers gets a command
    timeout of `LATENCY_MULTIPLE` typical replies, at least `COMMAND_FLOOR`. Each is capped by
    its configured value; with too few replies, or too many timeouts, that value stands.
    """
    if stats is None:
        return connect, command
    if stats.tarpitting:
        return min(connect, TARPIT_CONNECT), min(command, COMMAND_FLOOR)
    if (
        stats.latency_ewma is None
        or stats.replies < MIN_REPLIES
        or stats.timeouts > TIMEOUT_SHARE * stats.replies
    ):
        return connect, command
    fitted = max(COMMAND_FLOOR, LATENCY_MULTIPLE * stats.latency_ewma)
    return connect, min(command, fitted)


RETRY_CAP = 60.0
"""The longest a task that found its MX group full waits before it comes back."""


def retry_delay(stats: MxStats | None, *, base: float) -> float:
    """How long a task that found its MX group's slots all taken waits before trying again.

    A group that is only busy with our own sessions frees a slot within a flight or two: `base`.
    One that has been turning sessions away (421s) or tarpitting is pressed on less: the wait
    doubles for each recent such sign, up to `RETRY_CAP`, so its queued addresses stop
    knocking every second while the slots it has left work through them."""
    if stats is None:
        return base
    signs = stats.busy + stats.tarpits
    return min(RETRY_CAP, base * float(2.0 ** min(signs, 16.0)))
