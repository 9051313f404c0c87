"""The demo's second site is real: a SQLite data directory that joined the demo practice
with its key file, synced once, edited offline on both sides and synced again, so the
console shows a real peer, real lag and real conflicts that resolve and travel."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from strongroom.core import demo
from strongroom.core.datadir import open_data_dir
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client
from strongroom.core.jobs import sync as sync_job
from strongroom.core.principal import Principal
from strongroom.core.repository import clients as clients_repo
from strongroom.core.repository import sessions as sessions_repo
from strongroom.core.repository.practices import create_practice
from strongroom.core.sync import conflicts
from strongroom.core.sync.peers import list_peers

SYSTEM = Principal("system", frozenset({"*"}))


def quiet(*_):
    pass


def seed(ctx, clients: int = 6, sessions_per_client: int = 2) -> None:
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Demo Practice")
        ids: list = []
        clients_repo.insert_clients(conn, ctx.keyring, SYSTEM, practice, demo.client_records(clients), created=ids)
        sessions_repo.insert_sessions(conn, ctx.keyring, SYSTEM, demo.session_records(ids, sessions_per_client))


def client(ctx, client_id) -> dict:
    with transaction(ctx.engine) as conn:
        return clients_repo.get_client(conn, ctx.keyring, SYSTEM, client_id)


def test_the_demo_second_site_joins_syncs_and_leaves_real_conflicts_lag_and_merges(ctx, tmp_path):
    seed(ctx)
    made = demo.seed_second_site(ctx, tmp_path / "satellite", actor="user:demo")
    with transaction(ctx.engine, read_only=True) as conn:
        (peer,) = list_peers(conn)
        queue = conflicts.list_conflicts(conn, ctx.keyring, SYSTEM)
    # A real peer: the satellite's own database file, synced just now, no invented history.
    assert peer["name"] == demo.SATELLITE and peer["url"].endswith(str(tmp_path / "satellite" / "strongroom.db"))
    assert not peer["inbound"] and peer["failures"] == 0 and peer["last_error"] is None
    assert peer["seconds_since_sync"] < 120 and peer["site_id"]
    assert peer["pending_changes"] >= 1            # one entered here after the last pass (see test_lag)
    # The same field changed on both sites: a client's phone, and a session's notes (clinical
    # free text is never merged within the text).
    assert sorted((c["table"], tuple(c["fields"])) for c in queue) == [("clients", ("phone",)),
                                                                        ("therapy_sessions", ("notes",))]
    assert all(c["peer"] == demo.SATELLITE for c in queue)
    assert peer["open_conflicts"] == 2 and sorted(made["conflicts"]) == sorted(c["id"] for c in queue)

    satellite = open_data_dir(tmp_path / "satellite")
    try:
        # Different fields of one client merged; the client registered at the satellite arrived here.
        for site in (ctx, satellite):
            merged = client(site, made["merged_client"])
            assert merged["email"] == made["edits"]["email"] and merged["address"] == made["edits"]["address"]
        assert client(ctx, made["new_client"])["last_name"] == client(satellite, made["new_client"])["last_name"]
        with transaction(ctx.engine) as conn:
            notes = {s["id"]: s["notes"] for s in sessions_repo.list_sessions(
                conn, ctx.keyring, SYSTEM, made["amended_session_client"])}
        assert notes[made["amended_session"]] == made["edits"]["notes"]

        # The conflict resolves here and the resolution reaches the satellite on the next pass.
        (phone,) = [c for c in queue if c["table"] == "clients"]
        with transaction(ctx.engine) as conn:
            conflicts.resolve_conflict(conn, ctx.keyring, SYSTEM, phone["id"], {"phone": "remote"})
        sync_job.run(ctx, {"peer": demo.SATELLITE}, quiet)
        assert client(ctx, phone["row_id"])["phone"] == client(satellite, phone["row_id"])["phone"]
        with transaction(satellite.engine, read_only=True) as conn:
            still_open = conflicts.list_conflicts(conn, satellite.keyring, SYSTEM)
        assert [c["table"] for c in still_open] == ["therapy_sessions"]
    finally:
        satellite.close()


def test_the_demo_second_site_needs_clients_to_edit_and_says_so(ctx, tmp_path):
    seed(ctx, clients=1, sessions_per_client=0)
    made = demo.seed_second_site(ctx, tmp_path / "satellite", actor="user:demo")
    assert made["conflicts"] == []
    with transaction(ctx.engine, read_only=True) as conn:
        (peer,) = list_peers(conn)
        n = len(conn.execute(select(Client.__table__.c.id)).all())
    assert peer["name"] == demo.SATELLITE and peer["open_conflicts"] == 0 and n == 1
    assert Path(tmp_path / "satellite" / "strongroom.toml").exists()


def test_the_demo_files_are_real_content_that_reads_back_and_are_seeded_once(ctx):
    """Three demo clients get a synthetic intake form and referral letter each, stored
    like any upload, so the console's files view and `export --with-files` show content;
    seeding again adds none."""
    from strongroom.core.db.models import ClientFile
    from strongroom.core.files.repository import open_file
    from strongroom.core.files.store import open_files_target

    seed(ctx)
    with transaction(ctx.engine) as conn:
        assert demo.seed_files(conn, ctx, SYSTEM) == 6
    with transaction(ctx.engine) as conn:
        assert demo.seed_files(conn, ctx, SYSTEM) == 0
        ids = list(conn.execute(select(ClientFile.__table__.c.id)).scalars())
        assert len(ids) == 6
        store = open_files_target(ctx.settings)
        texts = [b"".join(open_file(conn, ctx.keyring, SYSTEM, store, file_id).chunks) for file_id in ids]
    assert sum(t.startswith(b"Intake form (synthetic demo data)") for t in texts) == 3
    assert sum(t.startswith(b"Referral letter (synthetic demo data)") for t in texts) == 3
