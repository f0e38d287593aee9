"""Send rates in the Reacher spec's `max_msg_rate` form: parsed strictly, spaced evenly."""

from __future__ import annotations

import pytest

from app.engine.rules.rates import Rate, Rates, parse_rate


@pytest.mark.parametrize(
    ("text", "rate", "interval"),
    [
        pytest.param("9/m", Rate(9, "m"), 60 / 9, id="seed-002"),
        pytest.param("10/s", Rate(10, "s"), 0.1, id="per-second"),
        pytest.param("500/h", Rate(500, "h"), 7.2, id="per-hour"),
        pytest.param("1000/d", Rate(1000, "d"), 86.4, id="per-day"),
        pytest.param("1/s", Rate(1, "s"), 1.0, id="one"),
        pytest.param(" 9 / m ", Rate(9, "m"), 60 / 9, id="spaces-around-the-slash"),
    ],
)
def test_rates_parse(text: str, rate: Rate, interval: float) -> None:
    parsed = parse_rate(text)

    assert parsed == rate
    assert parsed.interval == pytest.approx(interval)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("9", id="no-unit"),
        pytest.param("9m", id="no-slash"),
        pytest.param("9/min", id="unit-word"),
        pytest.param("9/M", id="upper-case-unit"),
        pytest.param("9/w", id="unknown-unit"),
        pytest.param("/m", id="no-number"),
        pytest.param("-1/m", id="negative"),
        pytest.param("1.5/s", id="fraction"),
        pytest.param("٩/m", id="non-ascii-digit"),
        pytest.param("9/m/s", id="trailing"),
    ],
)
def test_anything_else_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected \{number\}/\{unit\}"):
        parse_rate(text)


def test_a_rate_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        parse_rate("0/m")


def test_a_rate_prints_in_its_normal_form() -> None:
    assert str(parse_rate("9 / m")) == "9/m"


def test_a_group_gets_its_override_else_the_default_else_no_rate() -> None:
    rates = Rates(default=Rate(2, "s"), overrides={"gmail": Rate(9, "m")})

    assert rates.span("gmail", 3) == pytest.approx(20.0)
    assert rates.span("mx.other.test", 1) == 0.5
    assert Rates().span("mx.other.test", 5) == 0.0


def test_a_span_is_of_at_least_one_send() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Rates().span("gmail", 0)
