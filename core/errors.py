"""One exception hierarchy for the whole of core.

Every message is written for a sysadmin and never carries PHI: callers name the table,
column, row id or key id involved, never a value. The CLI and the control socket each
map these classes to exit codes and protocol error codes in exactly one place.
"""
from __future__ import annotations


class StrongroomError(Exception):
    """Base class; `code` is the control-protocol error code this maps to."""

    code = "internal"
    exit_code = 1


class ConfigError(StrongroomError):
    """The configuration file or a command-line setting is invalid."""

    code = "bad_request"
    exit_code = 2


class ValidationError(StrongroomError):
    """Input data (a field value, an argument) is malformed."""

    code = "bad_request"
    exit_code = 2


class NotFoundError(StrongroomError):
    code = "not_found"
    exit_code = 3


class ConflictError(StrongroomError):
    """The action clashes with the current state (already exists, not empty, locked row)."""

    code = "conflict"
    exit_code = 4


class KeyUnavailableError(StrongroomError):
    """A key is missing, wrong or destroyed."""

    code = "internal"
    exit_code = 5


class CryptoError(StrongroomError):
    """A ciphertext failed authentication or cannot be decrypted with the keys at hand."""

    code = "internal"
    exit_code = 5


class IntegrityError(StrongroomError):
    """Stored data disagrees with its checksum, hash chain or manifest."""

    code = "internal"
    exit_code = 6


class AuthError(StrongroomError):
    """Authentication failed (bad password, bad or replayed TOTP, locked account)."""

    code = "unauthenticated"
    exit_code = 7


class RateLimitedError(AuthError):
    code = "rate_limited"


class PermissionDenied(StrongroomError):
    """The actor is authenticated but lacks the permission the action needs."""

    code = "forbidden"
    exit_code = 8


class DatabaseUnavailableError(StrongroomError):
    """The database cannot be reached or refused the connection."""

    code = "internal"
    exit_code = 9


class NotImplementedYetError(StrongroomError):
    """A job kind or command that a later release provides; said plainly, not faked."""

    code = "not_implemented"
    exit_code = 10


class CancelledError(StrongroomError):
    """A job stopped at a safe point because it was asked to."""

    code = "conflict"
    exit_code = 11
