"""Masking rules for PHI shown to readers without `phi:read` (the source's rules).

Masks keep just enough to tell records apart at a glance (last four digits, the email's
domain, an initial) and nothing that identifies a person on its own. Free-text PHI
(medical history, notes, emergency contact) and dates of birth have no safe partial
form and are replaced whole.
"""
from __future__ import annotations

import re

REDACTED = "[redacted]"
_NOT_DIGITS = re.compile(r"\D+")


def last_digits(value: str, n: int = 4) -> str:
    """The last `n` digits of `value`, in order: what an SSN or phone mask keeps, and
    the SSN blind index's search term (core.crypto.blind_index), so the four shown and
    the four searched on are the same."""
    # Every run of non-digits taken out in one C call: a masked export makes two or
    # three of these per client, and joining findall's single digits cost twice as much.
    tail = value[-n:]
    if tail.isdecimal():    # ends in n digits (\d is Unicode category Nd, as isdecimal): those
        return tail
    return _NOT_DIGITS.sub("", value)[-n:]


def mask_ssn(value: str) -> str:
    return f"***-**-{last_digits(value)}"


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:2]}***@{domain}" if domain else "***"


def mask_phone(value: str) -> str:
    return f"***-***-{last_digits(value)}"


def mask_address(value: str) -> str:
    first = value.split(" ", 1)[0]
    return f"{first} ***" if first else "***"


def mask_name(value: str) -> str:
    return f"{value[:1]}***" if value else "***"


RULES = {
    "ssn": mask_ssn,
    "email": mask_email,
    "phone": mask_phone,
    "address": mask_address,
    "first_name": mask_name,
    "last_name": mask_name,
}


def mask_field(field: str, value: str | None) -> str | None:
    """The masked form of one PHI field; fields without a rule are redacted whole."""
    if value is None:
        return None
    rule = RULES.get(field)
    return rule(value) if rule else REDACTED


def mask_record(record: dict, phi_fields: tuple[str, ...]) -> dict:
    return {k: (mask_field(k, v) if k in phi_fields else v) for k, v in record.items()}
