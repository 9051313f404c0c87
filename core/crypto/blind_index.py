"""Blind indexes: deterministic, keyed, truncated HMACs of normalised search terms.

They let the database answer "which client has this email / these last four SSN digits
/ this last name" without holding anything an attacker with the database alone could
reverse. The HMAC key is its own data key (purpose blind_index), never a field key, and
the field name is mixed in so equal values in different fields index differently.
Truncation to 16 bytes keeps collisions negligible for lookup while leaking less.
"""
from __future__ import annotations

import hmac

from strongroom.core.masking import last_digits

TRUNCATE = 16


def normalise(field: str, value: str) -> str:
    """The canonical form searched on: case-folded, trimmed; SSNs reduced to digits."""
    if field == "ssn_last4":
        return last_digits(value)
    return " ".join(value.split()).casefold()


class BlindIndexer:
    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def index(self, field: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        term = normalise(field, value)
        if not term:
            return None
        return hmac.digest(self._key, f"{field}\0{term}".encode(), "sha256")[:TRUNCATE]
