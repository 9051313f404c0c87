"""Fuzzy scoring of two clients, with reason codes that name what matched, never a value.

The score is a weighted sum of evidence, capped at 1.0:

  name   0.45 x Jaro-Winkler similarity of "first last" (the better of the names as
         given and with first and last swapped; a swap is reported as `swapped`)
  dob    0.30 when the dates of birth are equal, 0.15 when they differ by one
         transposed day/month or a single digit
  phone  0.15 when the last 7 digits are equal
  email  0.20 when the addresses are equal ignoring case and surrounding blanks

A pair is a candidate at THRESHOLD (0.80) and above. Names alone cannot reach it (0.45),
so two people who share a common name need a second identifier; a typo in the name
with the same date of birth (0.45 x 0.9 + 0.30 = 0.705) needs one more, phone or email.
Reason codes: `name~0.93`, `swapped`, `dob=`, `dob~`, `phone=`, `email=`.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

THRESHOLD = 0.80
W_NAME, W_DOB, W_DOB_NEAR, W_PHONE, W_EMAIL = 0.45, 0.30, 0.15, 0.15, 0.20


@dataclass(frozen=True, slots=True)
class Person:
    """The fields the matcher compares, normalised, held in memory only."""

    id: object
    first: str
    last: str
    dob: date | None
    phone: str | None      # last 7 digits
    email: str | None      # lower-cased


def normal_name(text: str | None) -> str:
    """Lower case, accents dropped, only letters kept (hyphens, apostrophes, blanks go)."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in folded.lower() if "a" <= ch <= "z")


def phone_key(text: str | None) -> str | None:
    digits = re.sub(r"\D", "", text or "")
    return digits[-7:] if len(digits) >= 7 else None


def email_key(text: str | None) -> str | None:
    text = (text or "").strip().lower()
    return text or None


def person(client_id, first: str | None, last: str | None, dob: date | str | None,
           phone: str | None, email: str | None) -> Person:
    if isinstance(dob, str):
        dob = date.fromisoformat(dob)
    return Person(client_id, normal_name(first), normal_name(last), dob, phone_key(phone), email_key(email))


def jaro_winkler(a: str, b: str) -> float:
    """Jaro-Winkler similarity in [0, 1] (prefix scale 0.1, up to 4 characters)."""
    if a == b:
        return 1.0 if a else 0.0
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0
    window = max(max(la, lb) // 2 - 1, 0)
    matched_b = [False] * lb
    a_matches = []
    for i, ch in enumerate(a):
        for j in range(max(0, i - window), min(lb, i + window + 1)):
            if not matched_b[j] and b[j] == ch:
                matched_b[j] = True
                a_matches.append(ch)
                break
    m = len(a_matches)
    if not m:
        return 0.0
    b_matches = [b[j] for j in range(lb) if matched_b[j]]
    transpositions = sum(x != y for x, y in zip(a_matches, b_matches)) // 2
    jaro = (m / la + m / lb + (m - transpositions) / m) / 3
    prefix = 0
    for x, y in zip(a[:4], b[:4]):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * 0.1 * (1 - jaro)


def _dob_near(a: date, b: date) -> bool:
    """One typo away: day and month swapped, or one digit of YYYYMMDD different."""
    if (a.year, a.month, a.day) == (b.year, b.day, b.month):
        return True
    return sum(x != y for x, y in zip(a.strftime("%Y%m%d"), b.strftime("%Y%m%d"))) == 1


def evidence(a: Person, b: Person) -> float:
    """The score's part that is not the name: cheap comparisons of equal values."""
    total = 0.0
    if a.dob and b.dob:
        total += W_DOB if a.dob == b.dob else W_DOB_NEAR if _dob_near(a.dob, b.dob) else 0.0
    if a.phone and a.phone == b.phone:
        total += W_PHONE
    if a.email and a.email == b.email:
        total += W_EMAIL
    return total


def score_if_candidate(a: Person, b: Person, threshold: float = THRESHOLD) -> tuple[float, list[str]] | None:
    """`score(a, b)` when it can reach `threshold`, else None without comparing names:
    the name adds at most W_NAME, so a pair whose other evidence falls short by more
    cannot qualify (most blocked pairs; Jaro-Winkler is the expensive part)."""
    if W_NAME + evidence(a, b) < threshold - 1e-9:
        return None
    value, reasons = score(a, b)
    return (value, reasons) if value >= threshold else None


def score(a: Person, b: Person) -> tuple[float, list[str]]:
    """(score in [0, 1], reason codes) for two people; see the module docstring."""
    reasons: list[str] = []
    straight = jaro_winkler(f"{a.first} {a.last}", f"{b.first} {b.last}")
    swapped = jaro_winkler(f"{a.first} {a.last}", f"{b.last} {b.first}")
    name = max(straight, swapped)
    total = W_NAME * name
    reasons.append(f"name~{name:.2f}")
    if swapped > straight and swapped >= 0.9:
        reasons.append("swapped")
    if a.dob and b.dob:
        if a.dob == b.dob:
            total += W_DOB
            reasons.append("dob=")
        elif _dob_near(a.dob, b.dob):
            total += W_DOB_NEAR
            reasons.append("dob~")
    if a.phone and a.phone == b.phone:
        total += W_PHONE
        reasons.append("phone=")
    if a.email and a.email == b.email:
        total += W_EMAIL
        reasons.append("email=")
    return min(round(total, 4), 1.0), reasons
