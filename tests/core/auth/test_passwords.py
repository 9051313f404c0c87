from __future__ import annotations

import pytest

from strongroom.core.auth import passwords
from strongroom.core.config import Argon2Settings, AuthSettings
from strongroom.core.errors import ValidationError
FAST_ARGON2 = Argon2Settings(time_cost=1, memory_kib=8, parallelism=1)

AUTH = AuthSettings(argon2=FAST_ARGON2)


def test_hash_is_argon2id_and_verifies():
    stored = passwords.hash_password("correct horse battery staple", AUTH)
    assert stored.startswith("$argon2id$")
    assert passwords.verify_password(stored, "correct horse battery staple", AUTH)
    assert not passwords.verify_password(stored, "correct horse battery stapler", AUTH)


def test_hash_uses_configured_parameters():
    stored = passwords.hash_password("correct horse battery staple", AUTH)
    assert "m=8,t=1,p=1" in stored


def test_garbage_stored_hash_is_a_mismatch_not_a_crash():
    assert passwords.verify_password("not-a-hash", "anything at all", AUTH) is False
    assert passwords.needs_rehash("not-a-hash", AUTH) is True


def test_needs_rehash_when_parameters_change():
    stored = passwords.hash_password("correct horse battery staple", AUTH)
    stronger = AuthSettings(argon2=Argon2Settings(time_cost=2, memory_kib=16, parallelism=1))
    assert passwords.needs_rehash(stored, AUTH) is False
    assert passwords.needs_rehash(stored, stronger) is True


@pytest.mark.parametrize("bad, rule", [
    ("short", "at least 12"),
    ("a" * 20, "too few different"),
    ("            ", "whitespace"),
    ("0123456789012", "sequence"),
    ("zyxwvutsrqponm", "sequence"),
    ("Password1234", "commonly guessed"),
    ("password123!!", "commonly guessed"),
    ("my-alice-is-great", "username"),
    ("x" * 1000 + "abcdefghij" * 10, "at most"),
])
def test_policy_rejects_weak_passwords_with_the_rule_named(bad, rule):
    with pytest.raises(ValidationError) as err:
        passwords.check_policy(bad, AUTH, username="alice")
    assert rule in str(err.value)
    assert bad not in str(err.value)  # the password is never echoed


def test_policy_accepts_a_reasonable_passphrase():
    passwords.check_policy("correct horse battery staple", AUTH, username="alice")
    passwords.check_policy("Tr0ub4dor&3xyz", AUTH, username="alice")


def test_policy_minimum_length_follows_settings():
    strict = AuthSettings(argon2=FAST_ARGON2, password_min_length=20)
    with pytest.raises(ValidationError, match="at least 20"):
        passwords.check_policy("correct horse batt", strict)


def test_once_prepared_an_unknown_username_costs_one_verification_and_no_hash(monkeypatch):
    """The dummy hash an unknown username is checked against is made by `prepare` (the
    daemon calls it at start), not by the first unknown username, whose answer would
    otherwise take a hash and a verification: twice a known account's time."""
    settings = AuthSettings(argon2=Argon2Settings(time_cost=1, memory_kib=16, parallelism=2))
    passwords.prepare(settings)
    work: list[str] = []
    real_hash, real_verify = passwords.PasswordHasher.hash, passwords.PasswordHasher.verify
    monkeypatch.setattr(passwords.PasswordHasher, "hash", lambda self, *a, **k: work.append("hash") or real_hash(self, *a, **k))
    monkeypatch.setattr(passwords.PasswordHasher, "verify", lambda self, *a: work.append("verify") or real_verify(self, *a))
    passwords.dummy_verify("a guess at a password", settings)
    assert work == ["verify"]
