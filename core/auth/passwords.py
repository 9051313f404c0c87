"""Passwords: Argon2id hashes and a short, sensible password policy.

The policy follows NIST SP 800-63B rather than composition rules: a minimum length, a
generous maximum (Argon2 is deliberately expensive, so unbounded input is a DoS), and a
refusal of the passwords every guessing list tries first. Messages never echo the
password back.
"""
from __future__ import annotations

import functools
import string

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from strongroom.core.config import Argon2Settings, AuthSettings
from strongroom.core.errors import ValidationError

MAX_LENGTH = 1024

# A deliberately small deny list: the handful that survive a length rule.
_COMMON = frozenset({
    "password", "passw0rd", "password1", "password12", "password123", "password1234",
    "qwerty", "qwertyuiop", "letmein", "welcome", "iloveyou", "administrator",
    "changeme", "trustno1", "baseball", "football", "monkey", "dragon", "sunshine",
    "strongroom", "therapist", "practice",
})

_SEQUENCES = (string.digits + string.digits, string.ascii_lowercase + string.ascii_lowercase,
              "qwertyuiopasdfghjklzxcvbnm")


@functools.lru_cache(maxsize=8)
def hasher(params: Argon2Settings) -> PasswordHasher:
    """An Argon2id hasher with the configured cost (cached: settings are frozen)."""
    return PasswordHasher(time_cost=params.time_cost, memory_cost=params.memory_kib,
                          parallelism=params.parallelism, type=Type.ID)


def _is_sequence(lowered: str) -> bool:
    """True for a run such as 0123456789.. or abcdef.. (forwards or backwards)."""
    for seq in _SEQUENCES:
        if lowered in seq or lowered[::-1] in seq:
            return True
    return False


def check_policy(password: str, settings: AuthSettings, *, username: str | None = None) -> None:
    """Raise ValidationError naming the rule a password breaks; say nothing about its value."""
    if len(password) < settings.password_min_length:
        raise ValidationError(f"password: must be at least {settings.password_min_length} characters")
    if len(password) > MAX_LENGTH:
        raise ValidationError(f"password: must be at most {MAX_LENGTH} characters")
    if not password.strip():
        raise ValidationError("password: must not be only whitespace")
    if len(set(password)) < 4:
        raise ValidationError("password: uses too few different characters")
    lowered = password.lower()
    if _is_sequence(lowered):
        raise ValidationError("password: is a keyboard or alphabet sequence")
    stripped = lowered.rstrip(string.digits + string.punctuation)
    if lowered in _COMMON or stripped in _COMMON:
        raise ValidationError("password: is on the list of commonly guessed passwords")
    if username and len(username) >= 3 and username.lower() in lowered:
        raise ValidationError("password: must not contain the username")


def hash_password(password: str, settings: AuthSettings) -> str:
    """The Argon2id hash to store (the policy is checked separately, by the caller)."""
    if len(password) > MAX_LENGTH:
        raise ValidationError(f"password: must be at most {MAX_LENGTH} characters")
    return hasher(settings.argon2).hash(password)


def verify_password(stored_hash: str, password: str, settings: AuthSettings) -> bool:
    """True when `password` matches. An unparsable stored hash is a mismatch, not a crash."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return hasher(settings.argon2).verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str, settings: AuthSettings) -> bool:
    """True when the stored hash was made with other parameters than configured now."""
    try:
        return hasher(settings.argon2).check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@functools.lru_cache(maxsize=8)
def _dummy_hash(params: Argon2Settings) -> str:
    return hasher(params).hash("strongroom-dummy-password")


def prepare(settings: AuthSettings) -> None:
    """Make the dummy hash now (the daemon calls this at start): made lazily, it would
    make the first unknown username's answer take a hash and a verification, twice a
    known account's time."""
    _dummy_hash(settings.argon2)


def dummy_verify(password: str, settings: AuthSettings) -> None:
    """Spend the time of one verification, so an unknown username answers as slowly as a
    known one with a wrong password (timing would otherwise enumerate users)."""
    verify_password(_dummy_hash(settings.argon2), password, settings)
