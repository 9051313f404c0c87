"""A restore never replaces the live database, however its URL is spelled (issue 12).

An operator's `job.run restore` naming the daemon's own database in another spelling
(localhost for 127.0.0.1, postgresql:// for postgresql+psycopg://, extra query
parameters, a SQLite path through a symlink, a `..` or a hard link), with force, is
refused: the job fails saying so, the URL's password is not echoed, and the live data is
as it was (a user created after the snapshot is still there, the audit chain still ends
where it did, plus the refusal). The offline path the CLI takes is refused too while the
daemon runs, and allowed once it is stopped (disaster recovery).
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from strongroom.core import audit
from strongroom.core.auth.users import create_user
from strongroom.core.backup.repository import open_repository
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.models import AuditLog, Role, User
from strongroom.core.errors import ConflictError
from strongroom.core import restore
from strongroom.core.repository.practices import only_practice
from strongroom.core.storage import open_target
from tests.daemon.conftest import PASSWORD, data_transaction, make_data_dir, running_daemon

SECRET = "s3cret-not-to-echo"


def _spellings(live: str, tmp_path: Path) -> list[str]:
    """The live database's URL spelled other ways that reach the same database."""
    url = make_url(live)
    if url.get_backend_name() == "postgresql":
        return [
            url.set(drivername="postgresql", host="localhost", password=SECRET).render_as_string(hide_password=False),
            url.update_query_dict({"application_name": "spelled", "connect_timeout": "7"})
               .render_as_string(hide_password=False),
        ]
    path = Path(url.database)
    (tmp_path / "link.db").symlink_to(path)
    os.link(path, tmp_path / "hard.db")
    return [f"sqlite:///{tmp_path / 'link.db'}",
            f"sqlite:///{path.parent}/../{path.parent.name}/{path.name}",
            f"sqlite:///{tmp_path / 'hard.db'}",
            f"sqlite:///{path}?timeout=5"]


def _wait(daemon, run_id: str) -> dict:
    """The run once finished, read as the local admin (an operator lacks audit:read)."""
    deadline = time.monotonic() + 30
    while (run := daemon.call("job.get", {"run_id": run_id}))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.1)
    return run


def _operator_token(daemon, data_dir: Path) -> str:
    with data_transaction(data_dir) as (ctx, conn):
        _, enrolment = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "operator1", PASSWORD,
                                   Role.OPERATOR, actor="test")
    totp = pyotp.TOTP(enrolment.secret).now() if enrolment else None
    return daemon.call("auth.login", {"username": "operator1", "password": PASSWORD, "totp": totp},
                       token=None)["token"]


def _state(data_dir: Path) -> tuple[set[str], int]:
    """Usernames and the audit chain's length; the chain must verify."""
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        assert audit.verify(ctx.engine).ok
        with ctx.engine.connect() as conn:
            users = set(conn.execute(select(User.__table__.c.username)).scalars())
            entries = conn.execute(select(func.count()).select_from(AuditLog.__table__)).scalar_one()
        return users, entries
    finally:
        ctx.close()


def test_restore_job_refuses_the_live_database_however_spelled(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    live = load_settings(data_dir / "strongroom.toml").database.url
    with running_daemon(data_dir, tmp_path) as daemon:
        token = _operator_token(daemon, data_dir)
        backup = _wait(daemon, daemon.call("job.run", {"kind": "backup"}, token=token)["id"])
        assert backup["status"] == "succeeded", backup["error"]
        snapshot_id = backup["result"]["snapshot_id"]
        with data_transaction(data_dir) as (ctx, conn):
            create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "after_snapshot", PASSWORD,
                        Role.STAFF, actor="test")
        users_before, entries_before = _state(data_dir)
        assert "after_snapshot" in users_before

        spellings = _spellings(live, tmp_path)
        for dest in spellings:
            run = daemon.call("job.run", {"kind": "restore", "params": {
                "snapshot_id": snapshot_id, "dest": dest, "force": "true"}}, token=token)
            done = _wait(daemon, run["id"])
            assert done["status"] == "failed", (dest, done)
            assert "live database" in done["error"], (dest, done["error"])
            assert SECRET not in done["error"] and SECRET not in daemon.log()

        users_after, entries_after = _state(data_dir)
        assert users_after == users_before
        # Each refusal is audited (a job run and a failed RESTORE): the chain only grew.
        assert entries_after >= entries_before + len(spellings)


def test_offline_restore_is_refused_while_a_daemon_serves_the_database_and_allowed_once_stopped(tmp_path, db_url):
    """What `strongroom restore --force` does (no `live` engine: it runs beside the
    daemon, not in it): refused while the daemon serves the target, the documented
    disaster-recovery action once the daemon is stopped."""
    data_dir = make_data_dir(tmp_path, db_url)
    settings = load_settings(data_dir / "strongroom.toml")
    with running_daemon(data_dir, tmp_path) as daemon:
        backup = _wait(daemon, daemon.call("job.run", {"kind": "backup"})["id"])
        assert backup["status"] == "succeeded", backup["error"]
        snapshot_id = uuid.UUID(backup["result"]["snapshot_id"])
        with data_transaction(data_dir) as (ctx, conn):
            create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "after_snapshot", PASSWORD,
                        Role.STAFF, actor="test")
        ctx = open_context(settings)
        try:
            repo = open_repository(open_target(str(settings.data_dir / "backups")), ctx.keyring)
            dest = _spellings(settings.database.url, tmp_path)[0]
            with pytest.raises(ConflictError, match="running strongroomd serves it") as refused:
                restore.restore(repo, snapshot_id, dest, force=True)
            assert SECRET not in str(refused.value)
            assert "after_snapshot" in _state(data_dir)[0]
        finally:
            ctx.close()
    ctx = open_context(settings)       # the daemon is stopped: disaster recovery, offline
    try:
        repo = open_repository(open_target(str(settings.data_dir / "backups")), ctx.keyring)
        result = restore.restore(repo, snapshot_id, dest, force=True)
        assert result.rows > 0
    finally:
        ctx.close()
    assert "after_snapshot" not in _state(data_dir)[0]


def test_a_mistyped_or_unopenable_restore_target_is_refused_at_once_and_queues_nothing(tmp_path, db_url):
    """The console's restore dialog hands job.run what was typed: a mistake comes back
    from job.run itself, named, instead of as a failed run (issue 18.2). (A non-empty
    target without force likewise: tests/core/jobs/test_restore_request.py; the live
    database still goes to the run, which refuses and audits it, as above.)"""
    from tests.daemon.conftest import error_of

    data_dir = make_data_dir(tmp_path, db_url)
    snapshot = str(uuid.uuid4())
    with running_daemon(data_dir, tmp_path) as daemon:
        closed = error_of(daemon, "job.run", {"kind": "restore", "params": {
            "snapshot_id": snapshot, "dest": f"postgresql://restorer:{SECRET}@127.0.0.1:1/nowhere"}})
        assert closed.code == "bad_request" and "restore: dest (the target database) cannot be opened" in closed.message
        assert SECRET not in closed.message and SECRET not in daemon.log()
        typo = error_of(daemon, "job.run", {"kind": "restore", "params": {"snapshot_id": snapshot,
                                                                          "dest": "sqlite//missing-colon.db"}})
        assert typo.code == "bad_request" and "restore: dest (the target database) is not a database URL" in typo.message
        assert "database.url" not in typo.message and "missing-colon" not in typo.message
        assert daemon.call("job.list", {"kind": "restore"}) == []
