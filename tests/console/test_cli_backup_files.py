"""`strongroom backup list|show` count a snapshot's client files; `strongroom restore`
brings them back beside a SQLite target (or where --files-target says), byte-identical."""
import json
import os
from pathlib import Path

from strongroom.core import audit
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.demo import client_records
from strongroom.core.files.repository import add_file, open_file
from strongroom.core.files.store import open_files_target
from strongroom.core.jobs import backup
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from strongroom.core.storage import open_target
from tests.console.cli_helpers import run_cli as run
from strongroom.core.files.content import CHUNK_SIZE
from tests.daemon.conftest import make_data_dir

ALL = Principal("user:tester", frozenset({"*"}))


def test_list_show_and_restore_carry_client_files(tmp_path, db_url, capsys):
    data_dir = make_data_dir(tmp_path, db_url)
    content = os.urandom(CHUNK_SIZE + CHUNK_SIZE // 2)     # two content objects and a manifest: 3 objects
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        created: list = []
        with transaction(ctx.engine) as conn:
            insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), client_records(2), created=created)
            file_id = add_file(conn, ctx.keyring, ALL, open_files_target(ctx.settings), ctx.settings.files,
                               created[0], name="referral.pdf", content_type="application/pdf",
                               size=len(content), content=iter([content]))["id"]
        snapshot = backup.run(ctx, {}, lambda *a: None)["snapshot_id"]
        keyring = ctx.keyring
    finally:
        ctx.close()

    code, out, err = run(capsys, "--data-dir", data_dir, "backup", "list", "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["files"] == 1 and listed["file_bytes"] == len(content)
    code, out, err = run(capsys, "--data-dir", data_dir, "backup", "show", snapshot)
    assert code == 0 and "1 client files, 3 objects" in out, err

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    code, out, err = run(capsys, "--data-dir", data_dir, "restore", snapshot,
                         "--target", f"sqlite:///{fresh / 'strongroom.db'}")
    assert code == 0, err
    assert "1 client files (3 objects) restored" in out
    engine = make_engine(f"sqlite:///{fresh / 'strongroom.db'}")
    audit.seal_with(engine, keyring)     # the READ it audits is sealed, as a data directory's would be
    try:
        with transaction(engine) as conn:
            got = b"".join(open_file(conn, keyring, ALL, open_target(str(fresh / "files")), file_id).chunks)
    finally:
        engine.dispose()
    assert got == content

    elsewhere = tmp_path / "elsewhere"
    code, out, err = run(capsys, "--data-dir", data_dir, "restore", snapshot, "--target",
                         f"sqlite:///{tmp_path / 'other.db'}", "--files-target", str(elsewhere))
    assert code == 0, err
    assert len([p for p in Path(elsewhere).rglob("*") if p.is_file()]) == 3


def test_restore_to_a_target_that_is_no_database_url_is_refused_by_name(tmp_path, db_url, capsys):
    data_dir = make_data_dir(tmp_path, db_url)
    code, out, err = run(capsys, "--data-dir", data_dir, "restore", "01a2061f-77c9-7000-a71a-77552702252a",
                         "--target", "sqlite//forgot-the-colon.db")
    assert code != 0 and "restore: dest (the target database) is not a database URL" in err
    assert "database.url" not in err and "forgot-the-colon" not in err
