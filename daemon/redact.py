"""The configuration as `config.show` returns it: secrets replaced by `<redacted>`.

A key whose name says it holds a secret (password, token, key file...) loses its value;
`*_env` keys only name an environment variable and are kept. A database URL keeps its
scheme, user and host and loses its password. Nothing here reads a secret's value.
"""
from __future__ import annotations

SECRET_KEYS = ("password", "secret", "token", "kek", "key_file", "credential")


def redact_config(value, key: str = ""):
    """`value` (a settings dump, or a part of one found under `key`) without secrets."""
    if isinstance(value, dict):
        return {k: redact_config(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_config(v, key) for v in value]
    if isinstance(value, str) and any(s in key.lower() for s in SECRET_KEYS) and not key.endswith("_env"):
        return "<redacted>"
    if key == "url" and isinstance(value, str) and "@" in value and "://" in value:
        scheme, rest = value.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:<redacted>@{host}" if ":" in creds else value
    return value
