"""Random-looking usernames: the figure, the flag, and their precision and recall on the
labelled sample tests/data/usernames.csv (people's usernames in many languages, written in
the usual ways, against random strings of the kinds bots sign up with)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from app.engine.rules import username

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "usernames.csv"
# Floors under what the sample gives at the shipped threshold (precision 0.992, recall 0.983
# on 489 usernames when tuned): a change to the model or threshold that loses more fails here.
PRECISION_FLOOR = 0.97
RECALL_FLOOR = 0.97


def _sample() -> list[tuple[str, bool]]:
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        return [(row["username"], row["random"] == "1") for row in csv.DictReader(handle)]


def test_precision_and_recall_on_the_labelled_sample() -> None:
    sample = _sample()
    flagged = {name for name, _ in sample if username.score(name).is_random_looking}
    random = {name for name, is_random in sample if is_random}

    true_positives = len(flagged & random)
    precision = true_positives / len(flagged)
    recall = true_positives / len(random)

    assert len(sample) > 400
    assert 0.4 < len(random) / len(sample) < 0.6
    assert precision >= PRECISION_FLOOR, sorted(flagged - random)
    assert recall >= RECALL_FLOOR, sorted(random - flagged)


@pytest.mark.parametrize(
    "name",
    [
        "abc123xyz789",  # seed 003's bot sign-up
        "xk7qv2mzp",
        "a1b2c3d4e5",
        "qzxjvkwpt",
        "8f3a9c2e7b1d",
        "user8k2jz9q",
    ],
)
def test_bot_usernames_look_random(name: str) -> None:
    assert username.score(name).is_random_looking


@pytest.mark.parametrize(
    "name",
    [
        "maria.garcia",
        "jsmith84",
        "vigensh",  # seed 003's real business address
        "anna1990",
        "zhang.wei",
        "nguyen.van.an",
        "jürgen.müller",
        "françois+newsletter",
        "krzysztof.kowalski",
        "tanaka_yuki",
        "79161234567",  # a phone number: people use them
        "иван.петров",  # not Latin script: not judged
        "xqz",  # too short to tell
    ],
)
def test_people_do_not(name: str) -> None:
    assert not username.score(name).is_random_looking


def test_the_figure_grows_with_randomness() -> None:
    figures = [username.score(n).entropy for n in ("maria.garcia", "mgarcia77", "xk7qv2mzp")]

    assert figures == sorted(figures)
    assert all(isinstance(f, float) and f > 0 for f in figures)
    assert username.score("").entropy == 0.0
