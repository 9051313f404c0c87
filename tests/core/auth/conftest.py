"""Fixtures for auth tests: a practice row and a user factory on the real databases."""
from __future__ import annotations

import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).parent))  # auth_helpers.py sits beside this file
from auth_helpers import PASSWORD, T0  # noqa: E402

from strongroom.core.auth import users
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Practice


@pytest.fixture
def practice_id(engine) -> uuid.UUID:
    pid = uuid.uuid4()
    with transaction(engine) as conn:
        conn.execute(insert(Practice.__table__), [{"id": pid, "name": "Test Practice", "settings": {}}])
    return pid


@pytest.fixture
def make_user(ctx, practice_id):
    """create_user in its own transaction; returns (UserRecord, Enrolment | None)."""
    def factory(username: str = "alice", role: str = "PRACTITIONER", password: str = PASSWORD,
                now: datetime = T0):
        with transaction(ctx.engine) as conn:
            return users.create_user(conn, ctx.keyring, ctx.settings, practice_id, username,
                                     password, role, full_name="A Person", actor="test", now=now)
    return factory

