"""Synthetic clients with planted duplicates, for the matcher's tests and benchmark.

`generate(n, rate, seed)` returns `n` client records (ClientInput dicts; made-up names
from syllables, so the name space is wide like a real practice's) and the index pairs
(original, duplicate) planted among them. Each duplicate copies an original with one
or two of: a typo in a name, first and last name swapped, another phone, the email in
other case. Look-alikes that are not duplicates are planted too: family members (same
last name, phone and address, another first name and date of birth).
"""
from __future__ import annotations

import random
from datetime import date, timedelta

_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "br", "ch", "cl", "dr", "gr", "kr", "pl", "sh", "st", "th", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ie", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "th", "nd", "rt", "x", "m")


def _name(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(syllables)).capitalize()


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 4:
        return text + rng.choice("aeiou")
    i = rng.randrange(1, len(text) - 1)
    change = rng.randrange(3)
    if change == 0:                                   # two letters swapped
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if change == 1:                                   # one letter dropped
        return text[:i] + text[i + 1:]
    return text[:i] + rng.choice("aeioulnrst") + text[i + 1:]   # one letter replaced


def _phone(rng: random.Random) -> str:
    return f"+1 {rng.randrange(200, 999)} {rng.randrange(200, 999)} {rng.randrange(0, 10000):04d}"


def _client(rng: random.Random, number: int) -> dict:
    first, last = _name(rng, rng.choice((1, 2))), _name(rng, rng.choice((2, 2, 3)))
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 65 * 365))
    return {"first_name": first, "last_name": last, "date_of_birth": born, "phone": _phone(rng),
            "email": f"{first.lower()}.{last.lower()}{number}@example.org"}


def _duplicate(rng: random.Random, original: dict) -> dict:
    copy = dict(original)
    changes = rng.sample(("typo", "swap", "phone", "email"), rng.choice((1, 2)))
    for change in changes:
        if change == "typo":
            field = rng.choice(("first_name", "last_name"))
            copy[field] = _typo(rng, copy[field])
        elif change == "swap":
            copy["first_name"], copy["last_name"] = copy["last_name"], copy["first_name"]
        elif change == "phone":
            copy["phone"] = _phone(rng)
        else:
            copy["email"] = copy["email"].upper() if rng.random() < 0.5 else copy["email"].capitalize()
    return copy


def _relative(rng: random.Random, original: dict, number: int) -> dict:
    first = _name(rng, rng.choice((1, 2)))
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 65 * 365))
    return {"first_name": first, "last_name": original["last_name"], "date_of_birth": born,
            "phone": original["phone"], "email": f"{first.lower()}.{original['last_name'].lower()}{number}@example.org"}


def generate(n: int, rate: float = 0.05, *, seed: int = 7,
             relatives: float = 0.02) -> tuple[list[dict], set[tuple[int, int]]]:
    """`n` records, about `rate` x n of them planted duplicates and `relatives` x n
    family members; returns (records, {(original index, duplicate index)})."""
    rng = random.Random(seed)
    records: list[dict] = []
    truth: set[tuple[int, int]] = set()
    planted: set[int] = set()
    while len(records) < n:
        roll = rng.random()
        if records and roll < rate:
            original = rng.randrange(len(records))
            if original in planted:
                continue                               # one duplicate per client: truth stays pairwise
            planted.update((original, len(records)))
            records.append(_duplicate(rng, records[original]))
            truth.add((original, len(records) - 1))
        elif records and roll < rate + relatives:
            records.append(_relative(rng, records[rng.randrange(len(records))], len(records)))
        else:
            records.append(_client(rng, len(records)))
    return records, truth


def precision_recall(found: set[frozenset], truth: set[frozenset]) -> tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 1.0), (hits / len(truth) if truth else 1.0)
