"""Export retention: files past their period leave the export directory, each deletion
audited; a configuration's retention_days overrides [export] retention_days; legal holds
keep what they may reach; dry runs and bad input change nothing."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticError
from sqlalchemy import select, update

from strongroom.core.auth.users import create_user
from strongroom.core.config import ExportSettings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Export, ExportConfiguration
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ValidationError
from strongroom.core.jobs import export, export_retention, kinds
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository.practices import create_practice
from strongroom.core.retention.holds import place_hold, release_hold

_exports = Export.__table__


def quiet(done, total, message):
    pass


@pytest.fixture
def world(ctx):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Retention Practice")
        other = create_practice(conn, SYSTEM, "Other Practice")
        create_user(conn, ctx.keyring, ctx.settings, practice, "mgr", "Export-Test-Pass-1", "MANAGER")
        alice = repo.create_client(conn, ctx.keyring, SYSTEM, practice, {"first_name": "Alice", "last_name": "A"})
        bob = repo.create_client(conn, ctx.keyring, SYSTEM, practice, {"first_name": "Bob", "last_name": "B"})
        carol = repo.create_client(conn, ctx.keyring, SYSTEM, other, {"first_name": "Carol", "last_name": "C"})
    return {"practice": practice, "other": other, "alice": alice, "bob": bob, "carol": carol}


def exported(ctx, age_days: float, **params) -> dict:
    """An export finished `age_days` ago."""
    result = export.run(ctx, {"actor": "user:mgr", "tables": ["clients"], "format": "csv", **params}, quiet)
    finished = utcnow() - timedelta(days=age_days)
    with transaction(ctx.engine) as conn:
        conn.execute(update(_exports).where(_exports.c.id == uuid.UUID(result["export_id"]))
                     .values(created_at=finished, finished_at=finished))
    return result


def record(ctx, export_id) -> dict:
    with transaction(ctx.engine, read_only=True) as conn:
        return dict(conn.execute(select(_exports).where(_exports.c.id == uuid.UUID(export_id))).mappings().one())


def deletions(ctx) -> list[dict]:
    table = AuditLog.__table__
    with transaction(ctx.engine, read_only=True) as conn:
        rows = conn.execute(select(table.c.action, table.c.record_id, table.c.details)
                            .where(table.c.table_name == "exports", table.c.action == "DELETE")).all()
    return [{"record_id": str(r.record_id), **json.loads(r.details)} for r in rows]


def expire(ctx, **params) -> dict:
    return export_retention.run(ctx, kinds.check_params("export_retention", params), quiet)


def test_an_expired_export_is_deleted_and_audited_and_a_fresh_one_kept(ctx, world):
    old, fresh = exported(ctx, 31), exported(ctx, 29)
    result = expire(ctx)
    assert (result["checked"], result["due"], result["deleted"], result["held"], result["failed"]) == (2, 1, 1, 0, 0)
    assert not Path(old["location"]).exists() and Path(fresh["location"]).is_dir()
    gone = record(ctx, old["export_id"])
    assert gone["status"] == "expired" and gone["location"] is None and gone["sha256"] == old["sha256"]
    assert record(ctx, fresh["export_id"])["status"] == "succeeded"
    [entry] = deletions(ctx)
    assert entry["record_id"] == old["export_id"] and entry["event"] == "export_expired"
    assert entry["retention_days"] == 30 and entry["age_days"] == 31 and entry["files_removed"] is True
    assert expire(ctx)["deleted"] == 0      # nothing left to do: not deleted twice


def test_a_configurations_retention_days_overrides_the_default(ctx, world):
    export.save_configuration(ctx, "long", {"tables": ["clients"], "format": "csv", "retention_days": 90}, SYSTEM)
    export.save_configuration(ctx, "short", {"tables": ["clients"], "format": "csv", "retention_days": "2"}, SYSTEM)
    kept = exported(ctx, 40, configuration="long")
    dropped = exported(ctx, 3, configuration="short")
    plain_kept = exported(ctx, 3)
    result = expire(ctx)
    assert result["deleted"] == 1
    assert [e["export_id"] for e in result["exports"]] == [dropped["export_id"]]
    assert result["exports"][0]["retention_days"] == 2
    assert Path(kept["location"]).is_dir() and Path(plain_kept["location"]).is_dir()
    assert not Path(dropped["location"]).exists()


def test_the_default_comes_from_export_settings(ctx, world):
    ctx.settings = ctx.settings.model_copy(update={"export": ctx.settings.export.model_copy(
        update={"retention_days": 5})})
    old = exported(ctx, 6)
    assert expire(ctx)["deleted"] == 1 and not Path(old["location"]).exists()


def test_legal_holds_keep_every_export_they_may_reach(ctx, world):
    only_alice = exported(ctx, 40, filters={"client_id": str(world["alice"])})
    only_bob = exported(ctx, 40, filters={"client_id": str(world["bob"])})
    whole_practice = exported(ctx, 40, filters={"practice_id": str(world["practice"])})
    other_practice = exported(ctx, 40, filters={"practice_id": str(world["other"])})
    everything = exported(ctx, 40)
    with transaction(ctx.engine) as conn:
        hold = place_hold(conn, actor="system", reason="Matter 2026-014", client_id=world["alice"])
    result = expire(ctx)
    outcome = {e["export_id"]: e["outcome"] for e in result["exports"]}
    assert outcome == {only_alice["export_id"]: "held", only_bob["export_id"]: "deleted",
                       whole_practice["export_id"]: "held", other_practice["export_id"]: "deleted",
                       everything["export_id"]: "held"}
    assert (result["held"], result["deleted"]) == (3, 2)
    for kept in (only_alice, whole_practice, everything):
        assert Path(kept["location"]).is_dir() and record(ctx, kept["export_id"])["status"] == "succeeded"
    with transaction(ctx.engine) as conn:
        release_hold(conn, hold.id, actor="system")
        place_hold(conn, actor="system", reason="Matter 2026-015", practice_id=world["other"])
    result = expire(ctx)
    assert result["deleted"] == 2 and result["held"] == 1    # `everything` reaches the other practice too
    assert Path(everything["location"]).is_dir() and not Path(only_alice["location"]).exists()


def test_a_dry_run_changes_nothing(ctx, world):
    old = exported(ctx, 31)
    result = expire(ctx, dry_run=True)
    assert result["dry_run"] and result["exports"] == [
        {"export_id": old["export_id"], "retention_days": 30, "outcome": "would_delete"}]
    assert Path(old["location"]).is_dir() and record(ctx, old["export_id"])["status"] == "succeeded"
    assert deletions(ctx) == []


def test_a_directory_already_gone_is_recorded_and_a_location_elsewhere_never_deleted(ctx, world, tmp_path):
    gone, moved = exported(ctx, 31), exported(ctx, 31)
    Path(gone["location"]).joinpath("manifest.json").unlink()
    for f in Path(gone["location"]).iterdir():
        f.unlink()
    Path(gone["location"]).rmdir()
    elsewhere = tmp_path / "not-an-export"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    with transaction(ctx.engine) as conn:
        conn.execute(update(_exports).where(_exports.c.id == uuid.UUID(moved["export_id"])).values(location=str(elsewhere)))
    assert expire(ctx)["deleted"] == 2
    assert (elsewhere / "keep.txt").read_text() == "keep"
    assert {d["record_id"]: d["files_removed"] for d in deletions(ctx)} == {
        gone["export_id"]: False, moved["export_id"]: False}


@pytest.mark.parametrize("bad", [-1, 0, 3651, 10 ** 12, "abc", "1.5", True])
def test_bad_retention_days_is_refused_by_name_and_nothing_saved(ctx, world, bad):
    with pytest.raises(ValidationError) as caught:
        export.save_configuration(ctx, "bad", {"tables": ["clients"], "format": "csv", "retention_days": bad}, SYSTEM)
    assert "retention_days" in str(caught.value) and str(bad) not in str(caught.value).replace("3650", "")
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(ExportConfiguration.__table__)).first() is None


@pytest.mark.parametrize("bad", [0, -3, 3651])
def test_export_settings_retention_days_is_bounded(bad):
    with pytest.raises(PydanticError) as caught:
        ExportSettings(retention_days=bad)
    assert "retention_days" in str(caught.value)


def test_bad_params_are_refused_by_name(ctx, world):
    with pytest.raises(ValidationError) as caught:
        kinds.check_params("export_retention", {"dry_run": "maybe"})
    assert "dry_run" in str(caught.value)
    with pytest.raises(ValidationError):
        kinds.check_params("export_retention", {"older_than": 3})
