"""A database's identity, not its URL's spelling, decides whether a restore target is
the live database (issue 12); `force` never overrides that."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from strongroom.core.db import identity
from strongroom.core.db.engine import make_engine
from strongroom.core.db.models import User
from strongroom.core.errors import ConflictError
from strongroom.core.jobs import backup, restore
from tests.core.conftest import seed_clients, with_backup_target
from tests.core.jobs.conftest import last_audit


def _other_spelling(url: str, tmp_path) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql", host="localhost", password="s3cret-pw") \
            .update_query_dict({"application_name": "x"}).render_as_string(hide_password=False)
    (tmp_path / "alias.db").symlink_to(parsed.database)
    return f"sqlite:///{tmp_path}/../{tmp_path.name}/alias.db"


def test_two_spellings_of_one_database_have_one_identity(db_url, tmp_path):
    live, spelled = make_engine(db_url), make_engine(_other_spelling(db_url, tmp_path))
    try:
        assert identity.of_engine(live) is not None
        assert identity.of_engine(live) == identity.of_engine(spelled)
    finally:
        live.dispose()
        spelled.dispose()


def test_a_different_database_has_a_different_identity(db_url, tmp_path, sqlite_template):
    live, other = make_engine(db_url), make_engine(f"sqlite:///{sqlite_template}")
    try:
        assert identity.of_engine(live) != identity.of_engine(other)
    finally:
        live.dispose()
        other.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:",
                                 "sqlite:///file:x?mode=memory&cache=shared&uri=true"])
def test_an_in_memory_database_is_never_an_existing_one(url):
    assert identity.of_sqlite(url) is None


def test_a_sqlite_file_not_yet_created_is_no_database_and_is_not_created(tmp_path):
    assert identity.of_sqlite(f"sqlite:///{tmp_path / 'new.db'}") is None
    assert not (tmp_path / "new.db").exists()


def test_a_hard_link_to_the_live_file_is_the_live_file(tmp_path, sqlite_template):
    os.link(sqlite_template, tmp_path / "hard.db")
    assert identity.of_sqlite(f"sqlite:///{tmp_path / 'hard.db'}") == identity.of_sqlite(f"sqlite:///{sqlite_template}")


def test_the_restore_job_refuses_its_own_database_spelled_differently_even_with_force(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=3)
    snapshot_id = backup.run(ctx, {"actor": "test"}, lambda *a: None)["snapshot_id"]
    with ctx.engine.connect() as conn:
        users = conn.execute(select(func.count()).select_from(User.__table__)).scalar_one()
    dest = _other_spelling(ctx.settings.database.url, tmp_path)
    with pytest.raises(ConflictError, match="own live database") as refused:
        restore.run(ctx, {"snapshot_id": snapshot_id, "dest": dest, "force": "true"}, lambda *a: None)
    assert "s3cret-pw" not in str(refused.value)
    entry = last_audit(ctx)
    assert (entry["action"], entry["outcome"]) == ("RESTORE", "failure")
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(User.__table__)).scalar_one() == users
