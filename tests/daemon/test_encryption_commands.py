"""The practice's encryption level over a real daemon's control socket (both engines):
shown with the evidence of each requirement to whoever reads compliance; put in force by
a keys manager only when the running configuration meets it (audited); refused naming
what is missing, with nothing changed; `none` and unknown names refused without echo."""
from __future__ import annotations

import pytest

from tests.daemon.conftest import LOCKED, add_admin, error_of, login, make_data_dir, running_daemon


def _level_events(d) -> list[dict]:
    return [e["details"] for e in d.call("audit.tail", {"limit": 200, "table_name": "practices"})
            if e["details"].get("event") == "encryption_level"]


def test_standard_is_shown_met_with_the_evidence_of_each_requirement(daemon):
    auditor = login(daemon, "auditor1")              # compliance:read, nothing else of the practice
    shown = daemon.call("practice.encryption.show", token=auditor)
    assert shown["level"] == "standard" and shown["met"] is True
    assert shown["levels"] == ["standard", "high", "military"]
    sealed, kek = shown["requirements"]
    assert sealed["met"] and sealed["evidence"]["cipher"] == "AES-256-GCM"
    assert sealed["evidence"]["keys_shared_by_several_clients"] == 0
    assert kek["met"] and kek["evidence"]["kek_file_mode"] == "0600"
    offered = {o["level"]: o for o in shown["offered"]}                # what choosing each would ask
    assert [offered[lv]["met"] for lv in ("standard", "high", "military")] == [True, False, False]
    unmet = [r["name"] for r in offered["high"]["requirements"] if not r["met"]]
    assert unmet == ["backups kept on an immutable copy (S3 Object Lock)"]


def test_high_is_refused_naming_what_is_missing_and_nothing_changes(daemon):
    refused = error_of(daemon, "practice.encryption.set", {"level": "high"})
    assert refused.code == "conflict"
    assert "immutable copy (S3 Object Lock)" in refused.message and "object_lock_days" in refused.message
    military = error_of(daemon, "practice.encryption.set", {"level": "military"})
    assert "key management service" in military.message and "four-eyes" in military.message
    none = error_of(daemon, "practice.encryption.set", {"level": "none"})
    assert none.code == "bad_request" and "weaker than standard" in none.message
    unknown = error_of(daemon, "practice.encryption.set", {"level": "ultra<b>"})
    assert unknown.code == "bad_request" and "ultra" not in unknown.message
    assert daemon.call("practice.encryption.show")["level"] == "standard"
    assert _level_events(daemon) == []


@pytest.fixture
def locked_daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, extra=LOCKED)
    with running_daemon(data_dir, tmp_path) as proc:
        yield proc


def test_high_is_put_in_force_when_a_backup_is_object_locked_and_audited(locked_daemon):
    d = locked_daemon
    before = d.call("practice.encryption.show")
    assert before["level"] == "standard"
    shown = d.call("practice.encryption.set", {"level": "high"})
    assert shown["level"] == "high" and shown["met"] is True
    immutable = next(r for r in shown["requirements"] if r["name"].startswith("backups kept on an immutable copy"))
    assert immutable["evidence"]["configurations"]["vault"] == "s3 object lock 30 days"
    assert d.call("practice.encryption.show", token=login(d, "auditor1"))["level"] == "high"
    (event,) = _level_events(d)
    assert (event["from"], event["to"]) == ("standard", "high")


def test_a_practice_owner_reads_the_level_but_only_a_keys_manager_sets_it(daemon):
    owner = login(daemon, "boss", add_admin(daemon.data_dir))
    assert daemon.call("practice.encryption.show", token=owner)["level"] == "standard"
    denied = error_of(daemon, "practice.encryption.set", {"level": "standard"}, owner)
    assert denied.code == "forbidden" and "keys:manage" in denied.message
    assert error_of(daemon, "practice.encryption.show", {}, login(daemon, "clinician")).code == "forbidden"
    assert _level_events(daemon) == []
