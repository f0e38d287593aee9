"""How random a username looks: bot sign-ups (``abc123xyz789``, ``xk7qv2mzp``) against people
(``maria.garcia``, ``jsmith84``, ``kowalski_piotr``). Reported, never part of the verdict.

The figure (`misc.username_entropy`) is the username's cost in bits per character under a
model of how people's usernames are written:

- letters follow a letter-bigram model of person names in many languages (Faker's Latin-script
  and romanized locales, `data/name_ngrams.json`, built by `scripts/build_name_model.py`),
  each run of letters scored as one word, from its start to its end;
- a digit costs log2(10) bits (any digit is as likely as another), a separator (``. _ -``)
  one bit;
- every switch between letters and digits after the first costs `SWITCH_BITS` more: people
  append a number (``anna1990``), bots interleave them (``a1b2c3``).

A name scores about 3 to 4 bits per character; random letters about 6. `is_random_looking` is
the figure above `THRESHOLD`, tuned on the labelled sample `tests/data/usernames.csv`; usernames
with fewer than `MIN_LENGTH` letters and digits are never flagged (too little to tell from),
nor are those in scripts other than Latin (accents are folded: ``jürgen`` is ``jurgen``).
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources

THRESHOLD = 5.0
"""Bits per character above which a username looks random (see tests/data/usernames.csv)."""
MIN_LENGTH = 6
SWITCH_BITS = 6.0
DIGIT_BITS = math.log2(10)
SEPARATOR_BITS = 1.0
INITIAL_BITS = math.log2(26)
WORD_BITS = 4.0
MAX_WORD = 20
BACKOFF = 3.0

_RUN = re.compile(r"[a-z]+|[0-9]+|[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class UsernameScore:
    entropy: float  # bits per character, rounded to 3 places
    is_random_looking: bool


@dataclass(frozen=True, slots=True)
class _Model:
    index: dict[str, int]
    bigram: list[list[float]]  # bigram[a][b] = P(b | a), add-one smoothed
    trigrams: dict[str, int]  # "abc" → times seen
    followed: dict[str, int]  # "ab" → times followed by any letter or the end

    def bits(self, context: str, letter: str) -> float:
        """-log2 P(letter | context): the trigram's share, interpolated with the bigram's."""
        smoothed = self.bigram[self.index[context[-1]]][self.index[letter]]
        if len(context) < 2:
            return -math.log2(smoothed)
        seen = self.trigrams.get(context + letter, 0)
        total = self.followed.get(context, 0)
        return -math.log2((seen + BACKOFF * smoothed) / (total + BACKOFF))


@functools.cache
def _model() -> _Model:
    data = json.loads(
        resources.files("app.engine.rules").joinpath("data/name_ngrams.json").read_text()
    )
    alphabet: str = data["alphabet"]
    bigram: list[list[float]] = []
    for row in data["counts"]:
        total = sum(row) + len(row)  # add-one smoothing: an unseen pair is rare, not impossible
        bigram.append([(count + 1) / total for count in row])
    trigrams: dict[str, int] = data["trigrams"]
    followed: dict[str, int] = {}
    for gram, count in trigrams.items():
        followed[gram[:2]] = followed.get(gram[:2], 0) + count
    return _Model({c: i for i, c in enumerate(alphabet)}, bigram, trigrams, followed)


@functools.cache
def _bits(context: str, letter: str) -> float:
    """-log2 P(letter | the one or two characters before it), from the model (at most 28³
    distinct questions: cached)."""
    return _model().bits(context, letter)


def _letters_bits(run: str) -> float:
    """The cheapest reading of a run of letters as words written together (``jsmith`` =
    ``j`` + ``smith``, ``annakowalski`` = ``anna`` + ``kowalski``), each further word costing
    `WORD_BITS` more. A one-letter word (an initial) costs as much as any letter; a longer one
    its letters, each given the two before it, from the start marker to the end marker."""
    best = [0.0] + [math.inf] * len(run)
    for start in range(len(run)):
        padded = "^" + run[start : start + MAX_WORD]
        inner = 0.0  # the word's letters so far, without its end
        for length in range(1, len(padded)):
            inner += _bits(padded[max(0, length - 2) : length], padded[length])
            if length == 1:
                word = INITIAL_BITS
            else:
                word = inner + _bits(padded[length - 1 : length + 1], "$")
            cost = best[start] + word + (WORD_BITS if start else 0.0)
            end = start + length
            best[end] = min(best[end], cost)
    return best[-1]


def score(username: str) -> UsernameScore:
    """The figure and the flag for the local part of an address (a ``+tag`` is ignored)."""
    name = _fold(username.split("+", 1)[0].lower())
    runs = _RUN.findall(name)
    bits = 0.0
    symbols = 0
    switches = 0
    previous: str | None = None
    for run in runs:
        if run.isascii() and run.isalpha():
            kind = "letters"
            bits += _letters_bits(run)
        elif run.isdigit():
            kind = "digits"
            bits += DIGIT_BITS * len(run)
        else:
            kind = "other"
            # Other scripts are outside the model: as costly as an unseen pair each.
            bits += sum(SEPARATOR_BITS if c in "._-" else 8.0 for c in run)
        if kind != "other":
            if previous is not None and previous != kind:
                switches += 1
            previous = kind
        symbols += len(run)
    if switches > 1:
        bits += SWITCH_BITS * (switches - 1)
    entropy = round(bits / symbols, 3) if symbols else 0.0
    alphanumeric = sum(len(run) for run in runs if run.isascii() and run.isalnum())
    judged = alphanumeric >= MIN_LENGTH and name.isascii()
    return UsernameScore(entropy, judged and entropy > THRESHOLD)


def _fold(name: str) -> str:
    """Accented Latin letters as their base letters (``müller`` → ``muller``); other scripts
    stay as they are (and are not judged: the model knows Latin letters only)."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c))
