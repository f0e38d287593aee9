"""Timeouts fitted to an MX group's recorded behaviour: only ever shorter, and only on evidence."""

from __future__ import annotations

import pytest

from app.engine.rules.adapt import (
    COMMAND_FLOOR,
    RETRY_CAP,
    TARPIT_CONNECT,
    MxStats,
    adapted_timeouts,
    merged,
    retry_delay,
)

CONFIGURED = {"connect": 10.0, "command": 10.0}


def answering(latency: float, *, replies: float = 50, timeouts: float = 0) -> MxStats:
    return MxStats(replies=replies, latency_ewma=latency, timeouts=timeouts)


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        pytest.param(None, (10.0, 10.0), id="never-seen"),
        pytest.param(MxStats(), (10.0, 10.0), id="nothing-recent"),
        pytest.param(answering(0.05, replies=4), (10.0, 10.0), id="too-few-replies"),
        pytest.param(answering(0.05), (10.0, COMMAND_FLOOR), id="fast-gets-the-floor"),
        pytest.param(answering(0.8), (10.0, 8.0), id="slower-gets-ten-replies-worth"),
        pytest.param(answering(3.0), (10.0, 10.0), id="never-above-the-configured"),
        pytest.param(answering(0.05, replies=100, timeouts=1), (10.0, 5.0), id="one-percent-ok"),
        pytest.param(
            answering(0.05, replies=100, timeouts=2), (10.0, 10.0), id="timeouts-keep-configured"
        ),
        pytest.param(MxStats(tarpits=1), (10.0, 10.0), id="one-slow-banner-is-not-a-tarpit"),
        pytest.param(MxStats(tarpits=2), (TARPIT_CONNECT, COMMAND_FLOOR), id="tarpit"),
        pytest.param(MxStats(tarpits=1.4), (10.0, 10.0), id="tarpits-gone-stale"),
        pytest.param(
            MxStats(replies=50, latency_ewma=0.05, tarpits=3),
            (TARPIT_CONNECT, COMMAND_FLOOR),
            id="tarpit-that-answers-after-its-banner",
        ),
        pytest.param(MxStats(busy=10), (10.0, 10.0), id="busy-changes-slots-not-timeouts"),
    ],
)
def test_timeouts(stats: MxStats | None, expected: tuple[float, float]) -> None:
    assert adapted_timeouts(stats, **CONFIGURED) == pytest.approx(expected)


def test_configured_timeouts_shorter_than_the_adapted_ones_stand() -> None:
    assert adapted_timeouts(MxStats(tarpits=5), connect=2.0, command=1.0) == (2.0, 1.0)
    assert adapted_timeouts(answering(0.05), connect=2.0, command=1.0) == (2.0, 1.0)


def test_merged_counts_add_and_latencies_average_by_replies() -> None:
    shared = MxStats(replies=30, latency_ewma=0.1, timeouts=1, busy=2, tarpits=0.5)
    local = MxStats(replies=10, latency_ewma=0.5, timeouts=1, busy=0, tarpits=1)

    both = merged(shared, local)

    assert both == MxStats(
        replies=40, latency_ewma=pytest.approx(0.2), timeouts=2, busy=2, tarpits=1.5
    )


def test_merged_keeps_the_one_latency_known() -> None:
    assert merged(MxStats(tarpits=1), answering(0.3)).latency_ewma == pytest.approx(0.3)
    assert merged(MxStats(tarpits=1), MxStats(busy=1)).latency_ewma is None


def test_a_full_group_that_behaves_is_retried_soon() -> None:
    assert retry_delay(None, base=0.5) == 0.5
    assert retry_delay(answering(0.05), base=0.5) == 0.5


def test_each_recent_421_or_tarpit_doubles_the_wait_up_to_the_cap() -> None:
    assert retry_delay(MxStats(busy=1), base=0.5) == 1.0
    assert retry_delay(MxStats(busy=1, tarpits=2), base=0.5) == 4.0
    assert retry_delay(MxStats(busy=500), base=0.5) == RETRY_CAP
