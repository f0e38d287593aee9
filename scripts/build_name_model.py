"""Builds `app/engine/rules/data/name_ngrams.json`, the letter bigram and trigram counts behind
`rules.username` (how name-like a username's letters are).

Trained on the person names of Faker's Latin-script locales (and the romanized Chinese and
Japanese ones), each distinct name once, folded to ASCII, plus Faker's list of common English
words (usernames are often words). Run it again after changing the locales:

    .venv/bin/pip install 'faker>=30' && .venv/bin/python scripts/build_name_model.py

Faker is needed only here (a dev dependency); the engine reads the JSON.
"""

from __future__ import annotations

import importlib
import itertools
import json
import pkgutil
import string
import unicodedata
from collections import Counter
from pathlib import Path

import faker.providers.lorem.en_US as english_words
import faker.providers.person as person

OUT = Path(__file__).resolve().parents[1] / "app" / "engine" / "rules" / "data" / "name_ngrams.json"
ALPHABET = "^" + string.ascii_lowercase + "$"  # ^ starts a word, $ ends it
LISTS = (
    "first_names",
    "first_names_male",
    "first_names_female",
    "last_names",
    "last_names_male",
    "last_names_female",
    "first_romanized_names",
    "last_romanized_names",
)


def fold(name: str) -> str | None:
    """`name` in lower-case ASCII letters, or None when it is not (mostly) Latin script."""
    decomposed = unicodedata.normalize("NFKD", name.lower())
    letters = "".join(c for c in decomposed if c in string.ascii_lowercase)
    others = sum(1 for c in decomposed if c.isalpha() and c not in string.ascii_lowercase)
    return letters if len(letters) >= 2 and others == 0 else None


def names() -> set[str]:
    found: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        for attribute in LISTS:
            listed = getattr(provider, attribute, ())
            if not isinstance(listed, dict | tuple | list | set | frozenset):
                continue  # a property computed from other lists
            for name in listed:
                for part in str(name).replace("-", " ").split():
                    if (folded := fold(part)) is not None:
                        found.add(folded)
    return found


def main() -> None:
    words = names() | {
        w.lower() for w in english_words.Provider.word_list if w.isascii() and w.isalpha()
    }
    counts = [[0] * len(ALPHABET) for _ in ALPHABET]
    index = {c: i for i, c in enumerate(ALPHABET)}
    trigrams: Counter[str] = Counter()
    for word in sorted(words):
        padded = f"^{word}$"
        for a, b in itertools.pairwise(padded):
            counts[index[a]][index[b]] += 1
        for i in range(len(padded) - 2):
            trigrams[padded[i : i + 3]] += 1
    model = {
        "alphabet": ALPHABET,
        "words": len(words),
        "counts": counts,
        "trigrams": dict(sorted(trigrams.items())),
    }
    OUT.write_text(json.dumps(model, separators=(",", ":")) + "\n")
    print(f"{len(words)} words → {OUT}")


if __name__ == "__main__":
    main()
