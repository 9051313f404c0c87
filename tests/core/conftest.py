"""Seed helpers for core tests: synthetic clients, a backup target per test, reading them back.

Shared here (not imported from another test module) so a test module is only ever a
specification, and moving one never breaks another.
"""
from __future__ import annotations

from datetime import datetime, timezone

from strongroom.core import audit
from strongroom.core.db.engine import transaction
from strongroom.core.demo import client_records
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.repository.clients import insert_clients, list_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.sessions import create_session

READER = Principal("test", frozenset({"table:clients:read", "table:therapy_sessions:read", "phi:read"}))


def seed_clients(ctx, n=40):
    """A practice with `n` synthetic clients, ten of them with a session; their ids."""
    created = []
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Backup Practice")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(n), created=created)
        for cid in created[:10]:
            create_session(conn, ctx.keyring, SYSTEM, {"client_id": cid, "notes": "tab\tnewline\nbackslash\\",
                                                       "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc)})
    return created


def with_backup_target(ctx, tmp_path):
    """Point the default backup configuration at a repository under `tmp_path`."""
    target = tmp_path / "repo"
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(update={"target": str(target)})})
    return target


def clients_of(engine, keyring):
    """Every client of a database, decrypted (through a sealed engine: reading PHI is audited)."""
    audit.seal_with(engine, keyring)    # reading PHI is audited: sealed, as a data directory would
    with transaction(engine) as conn:
        return sorted(list_clients(conn, keyring, READER, limit=10_000), key=lambda r: r["id"])
