"""A data directory holding synthetic demo clients, sessions and three sync conflicts,
plus an operator account (sync:resolve without phi:read), for daemon and console tests."""
from __future__ import annotations

from pathlib import Path

from strongroom.core import demo
from strongroom.core.auth.users import create_user
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from strongroom.core.repository.sessions import insert_sessions

from tests.daemon.conftest import PASSWORD


def seed_sync_demo(data_dir: Path) -> dict:
    """Seed the demo conflicts; returns their ids and the operator's TOTP secret (or None)."""
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            practice = only_practice(conn)
            ids: list = []
            insert_clients(conn, ctx.keyring, SYSTEM, practice, demo.client_records(4), created=ids)
            insert_sessions(conn, ctx.keyring, SYSTEM, demo.session_records(ids, 1))
            conflict_ids = demo.seed_conflicts(conn, ctx.keyring)
            _, enrolment = create_user(conn, ctx.keyring, ctx.settings, practice, "operator1", PASSWORD,
                                       Role.OPERATOR, actor="test")
    finally:
        ctx.close()
    return {"conflicts": [str(c) for c in conflict_ids], "operator_totp": enrolment.secret if enrolment else None}
