"""Scheduled exports from saved configurations: the schedule checked and its next time
kept in the database, missed runs collapsing into one, an encrypted scheduled export's
ZIP password from a systemd credential (missing: refused, nothing written), and bad
input refused by name with nothing changed."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pyzipper
from sqlalchemy import select, update

from strongroom.core.auth.users import create_user
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Export, ExportConfiguration
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.jobs import export
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository.practices import create_practice

_configurations = ExportConfiguration.__table__
CREDENTIAL_PASSWORD = "credential zip password"


def quiet(done, total, message):
    pass


@pytest.fixture
def world(ctx):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Scheduled Practice")
        create_user(conn, ctx.keyring, ctx.settings, practice, "mgr", "Export-Test-Pass-1", "MANAGER")
        repo.create_client(conn, ctx.keyring, SYSTEM, practice, {"first_name": "Alice", "last_name": "A"})
    return practice


def configuration(ctx, name: str) -> dict:
    with transaction(ctx.engine, read_only=True) as conn:
        return dict(conn.execute(select(_configurations).where(_configurations.c.name == name)).mappings().one())


def configurations(ctx) -> list[dict]:
    with transaction(ctx.engine, read_only=True) as conn:
        return [dict(r) for r in conn.execute(select(_configurations)).mappings()]


def save(ctx, name="nightly", **params):
    return export.save_configuration(ctx, name, {"tables": ["clients"], "format": "csv", **params}, SYSTEM)


def test_a_schedule_is_normalised_and_its_next_time_kept(ctx, world):
    before = utcnow()
    saved = save(ctx, schedule="0  6 * * MON")
    row = configuration(ctx, "nightly")
    assert row["schedule"] == saved["schedule"] == "0 6 * * mon"
    following = row["next_export_at"]
    assert following > before and following.weekday() == 0 and (following.hour, following.minute) == (6, 0)
    assert following - before <= timedelta(days=7)
    assert save(ctx, name="by-hand")["next_export_at"] is None


@pytest.mark.parametrize("bad", ["61 * * * *", "* * *", "@sometimes", "0 0 30 2 *", "* * * * * *"])
def test_a_bad_schedule_is_refused_by_name_and_nothing_saved(ctx, world, bad):
    with pytest.raises(ValidationError) as caught:
        save(ctx, schedule=bad)
    assert "schedule" in str(caught.value) and bad not in str(caught.value)
    assert configurations(ctx) == []


@pytest.mark.parametrize("params, words", [
    ({"encrypt": True, "schedule": "@daily"}, "needs password_credential"),
    ({"password_credential": "zip-pass"}, "encrypted configuration only"),
    ({"encrypt": True, "schedule": "@daily", "password_credential": "../etc/shadow"}, "password_credential is not"),
    ({"encrypt": True, "schedule": "@daily", "password_credential": "x" * 65}, "password_credential is not"),
])
def test_a_password_source_that_cannot_work_is_refused(ctx, world, params, words):
    with pytest.raises(ValidationError) as caught:
        save(ctx, **params)
    assert words in str(caught.value) and "shadow" not in str(caught.value)
    assert configurations(ctx) == []


def test_missed_runs_collapse_into_one_counted_from_now(ctx, world):
    save(ctx, schedule="@hourly")
    long_ago = utcnow() - timedelta(days=3)
    with transaction(ctx.engine) as conn:
        conn.execute(update(_configurations).values(next_export_at=long_ago))
    due = export.due_configurations(ctx)
    assert [name for name, _ in due] == ["nightly"]
    now = utcnow()
    assert export.claim_run(ctx, "nightly", due[0][1], now)
    following = configuration(ctx, "nightly")["next_export_at"]
    assert now < following <= now + timedelta(hours=1)
    assert export.due_configurations(ctx) == []              # 72 missed hours: one run
    assert not export.claim_run(ctx, "nightly", due[0][1], now)   # a second claim of the same time loses


def test_a_released_claim_is_due_again(ctx, world):
    save(ctx, schedule="@hourly")
    due_at = utcnow() - timedelta(minutes=5)
    with transaction(ctx.engine) as conn:
        conn.execute(update(_configurations).values(next_export_at=due_at))
    assert export.claim_run(ctx, "nightly", export.due_configurations(ctx)[0][1])
    export.release_claim(ctx, "nightly", due_at)
    assert [n for n, _ in export.due_configurations(ctx)] == ["nightly"]


def test_an_inactive_or_unscheduled_configuration_is_never_due(ctx, world):
    save(ctx, name="off", schedule="@hourly")
    save(ctx, name="manual")
    with transaction(ctx.engine) as conn:
        conn.execute(update(_configurations).where(_configurations.c.name == "off")
                     .values(is_active=False, next_export_at=utcnow() - timedelta(hours=2)))
    assert export.due_configurations(ctx) == []


def test_a_scheduled_encrypted_export_takes_its_password_from_the_credential(ctx, world, tmp_path, monkeypatch):
    save(ctx, encrypt=True, schedule="@daily", password_credential="strongroom-export-zip")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "strongroom-export-zip").write_text(CREDENTIAL_PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    result = export.run(ctx, {"actor": "system", "configuration": "nightly", "scheduled": True}, quiet)
    assert result["encrypted"] and result["row_count"] == 1
    [archive] = Path(result["location"]).glob("*.zip")
    with pyzipper.AESZipFile(archive) as z:
        z.setpassword(CREDENTIAL_PASSWORD.encode())
        assert b"Alice" not in z.read("clients.csv")     # masked profile: the name is masked
        with pytest.raises(RuntimeError):
            z.setpassword(b"wrong password!")
            z.read("clients.csv")


@pytest.mark.parametrize("setup, words", [
    ("no directory", "has no $CREDENTIALS_DIRECTORY"),
    ("missing", "is missing from $CREDENTIALS_DIRECTORY"),
    ("short", "shorter than"),
])
def test_a_missing_credential_fails_the_run_before_anything_is_written(ctx, world, tmp_path, monkeypatch,
                                                                       setup, words):
    save(ctx, encrypt=True, schedule="@daily", password_credential="strongroom-export-zip")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    if setup == "no directory":
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    else:
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    if setup == "short":
        (credentials / "strongroom-export-zip").write_text("short\n")
    with pytest.raises(ValidationError) as caught:
        export.run(ctx, {"actor": "system", "configuration": "nightly", "scheduled": True}, quiet)
    assert words in str(caught.value) and "strongroom-export-zip" in str(caught.value)
    assert "short\n" not in str(caught.value)
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(Export.__table__)).first() is None
    directory = export.export_directory(ctx.settings)
    assert not directory.exists() or list(directory.iterdir()) == []


def test_update_changes_only_what_is_given_and_refuses_bad_values_whole(ctx, world):
    save(ctx, encrypt=True)
    updated = export.update_configuration(ctx, "nightly", {"schedule": "30 2 * * *",
                                                           "password_credential": "zip-pass"}, SYSTEM)
    assert updated["schedule"] == "30 2 * * *" and updated["next_export_at"] is not None
    before = configuration(ctx, "nightly")
    for bad, words in (({"schedule": "99 * * * *"}, "schedule"), ({"retention_days": -5}, "retention_days"),
                       ({"retention_days": 10 ** 9}, "retention_days"), ({"password_credential": ""}, "needs"),
                       ({"format": "pdf"}, "unknown setting")):
        with pytest.raises(ValidationError) as caught:
            export.update_configuration(ctx, "nightly", bad, SYSTEM)
        assert words in str(caught.value)
        assert configuration(ctx, "nightly") == before
    cleared = export.update_configuration(ctx, "nightly", {"schedule": "", "retention_days": 12}, SYSTEM)
    assert cleared["schedule"] is None and cleared["next_export_at"] is None and cleared["retention_days"] == 12
    with pytest.raises(NotFoundError):
        export.update_configuration(ctx, "nope", {"schedule": "@daily"}, SYSTEM)


def test_list_configurations_shows_schedule_and_source_never_a_password(ctx, world):
    save(ctx, encrypt=True, schedule="@weekly", password_credential="zip-pass", retention_days=14)
    [item] = export.list_configurations(ctx)
    assert (item["name"], item["schedule"], item["password_credential"], item["retention_days"]) == (
        "nightly", "@weekly", "zip-pass", 14)
    assert isinstance(item["next_export_at"], datetime) and item["next_export_at"].tzinfo is not None
    assert uuid.UUID(str(item["id"])) == configuration(ctx, "nightly")["id"]


def _owned(ctx, name="owned", **params) -> None:
    """A scheduled configuration saved by the practice manager `mgr`."""
    export.save_configuration(ctx, name, {"tables": ["clients"], "format": "csv", "schedule": "@daily", **params},
                              export.principal_of(ctx, "user:mgr"))


def _last_audit(ctx):
    from strongroom.core import audit
    with ctx.engine.connect() as conn:
        return audit.tail(conn, limit=1)[0]


def test_a_scheduled_run_exports_as_the_configurations_owner(ctx, world):
    _owned(ctx)
    assert configuration(ctx, "owned")["created_by"] == "user:mgr"
    assert export.list_configurations(ctx)[0]["created_by"] == "user:mgr"
    result = export.run(ctx, {"actor": "system", "configuration": "owned", "scheduled": True}, quiet)
    with transaction(ctx.engine, read_only=True) as conn:
        (row,) = conn.execute(select(Export.__table__)).mappings().all()
    assert row["requested_by"] == "user:mgr" and row["status"] == "succeeded"
    entry = _last_audit(ctx)
    assert (entry.action, entry.actor, entry.record_id) == ("EXPORT", "user:mgr", result["export_id"])


def test_a_schedule_does_not_outlive_its_owners_rights(ctx, world):
    from strongroom.core.db.models import User
    from strongroom.core.errors import PermissionDenied
    _owned(ctx, masking="full")
    with transaction(ctx.engine) as conn:
        conn.execute(update(User.__table__).where(User.__table__.c.username == "mgr").values(disabled=True))
    with pytest.raises(PermissionDenied) as caught:
        export.run(ctx, {"actor": "system", "configuration": "owned", "scheduled": True}, quiet)
    assert "user:mgr" in str(caught.value)
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(Export.__table__)).first() is None
    directory = export.export_directory(ctx.settings)
    assert not directory.exists() or list(directory.iterdir()) == []


def test_only_the_daemons_scheduled_runs_act_for_the_owner(ctx, world):
    """A person who runs someone else's configuration with `scheduled` set is still
    themself: their own rights, their own name in the record."""
    _owned(ctx)
    export.run(ctx, {"actor": "local:root", "configuration": "owned", "scheduled": True}, quiet)
    with transaction(ctx.engine, read_only=True) as conn:
        (row,) = conn.execute(select(Export.__table__)).mappings().all()
    assert row["requested_by"] == "local:root"


def test_a_configuration_saved_before_owners_were_recorded_runs_as_the_system(ctx, world):
    save(ctx, name="legacy", schedule="@daily")
    with transaction(ctx.engine) as conn:
        conn.execute(update(_configurations).where(_configurations.c.name == "legacy").values(created_by=None))
    export.run(ctx, {"actor": "system", "configuration": "legacy", "scheduled": True}, quiet)
    with transaction(ctx.engine, read_only=True) as conn:
        (row,) = conn.execute(select(Export.__table__)).mappings().all()
    assert row["requested_by"] == "system"
