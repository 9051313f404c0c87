"""Blocking: which clients are compared at all, so matching stays far below n².

Each client falls into a few blocks; only clients sharing a block are scored. The
blocks are the clients' blind indexes (email, ssn_last4, last name: equal HMACs, read
from the database, nothing decrypted to build them) and keys computed in memory from
the decrypted fields: date of birth, phone's last 7 digits, lower-cased email, the
Soundex code of the last name with the first initial, and the two names' Soundex codes
in sorted order (which puts "Anna Smith" and "Smith Anna" together). A block larger
than MAX_BLOCK (a very common surname's index) is skipped: its members still meet in
their other blocks, and the number skipped is reported.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from strongroom.core.reconcile.score import Person

MAX_BLOCK = 300
_CODES = {**dict.fromkeys("bfpv", "1"), **dict.fromkeys("cgjkqsxz", "2"), **dict.fromkeys("dt", "3"),
          "l": "4", **dict.fromkeys("mn", "5"), "r": "6"}


def soundex(name: str) -> str:
    """American Soundex of a normalised (lower-case letters only) name; '' for ''."""
    if not name:
        return ""
    out = [name[0]]
    last = _CODES.get(name[0], "")
    for ch in name[1:]:
        code = _CODES.get(ch, "")
        if code and code != last:
            out.append(code)
            if len(out) == 4:
                break
        if ch not in "hw":
            last = code
    return "".join(out).ljust(4, "0")


def keys(p: Person, blind: Iterable[bytes | None] = ()) -> Iterator[tuple]:
    """The blocks `p` belongs to."""
    for number, digest in enumerate(blind):
        if digest:
            yield ("bidx", number, bytes(digest))
    if p.dob:
        yield ("dob", p.dob)
    if p.phone:
        yield ("phone", p.phone)
    if p.email:
        yield ("email", p.email)
    last, first = soundex(p.last), soundex(p.first)
    if last:
        yield ("last", last, p.first[:1])
    if last or first:
        yield ("names", *sorted((last, first)))


def pairs(people: list[Person], blind: list[tuple] | None = None,
          stats: dict | None = None) -> set[tuple[int, int]]:
    """Index pairs (i < j) of `people` sharing at least one block of at most MAX_BLOCK."""
    blocks: dict[tuple, list[int]] = defaultdict(list)
    for index, p in enumerate(people):
        for key in keys(p, blind[index] if blind else ()):
            blocks[key].append(index)
    found: set[tuple[int, int]] = set()
    skipped = 0
    for members in blocks.values():
        if len(members) < 2:
            continue
        if len(members) > MAX_BLOCK:
            skipped += 1
            continue
        for x, i in enumerate(members):
            for j in members[x + 1:]:
                found.add((i, j) if i < j else (j, i))
    if stats is not None:
        stats.update(blocks=len(blocks), oversized_blocks=skipped, compared=len(found))
    return found
