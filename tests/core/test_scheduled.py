"""Which schedules the config defines: sync passes per peer and for every peer."""
from __future__ import annotations

import pytest

from strongroom.core.config import Settings
from strongroom.core.errors import ConflictError
from strongroom.core.jobs import runs
from strongroom.core.scheduled import scheduled
from strongroom.core.sync.settings import SyncPeerSettings, SyncSettings


def _settings(tmp_path, **update) -> Settings:
    from tests.conftest import make_settings
    data = tmp_path / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    base = make_settings(data, f"sqlite:///{tmp_path}/x.db")
    return base.model_copy(update=update)


def test_each_peer_with_a_schedule_gets_its_own_scheduled_pass(tmp_path):
    sync = SyncSettings(peers={"central": SyncPeerSettings(url=f"sqlite:///{tmp_path}/c.db", schedule="*/15 * * * *"),
                               "laptop": SyncPeerSettings(url=f"sqlite:///{tmp_path}/l.db")})
    found = [e for e in scheduled(_settings(tmp_path, sync=sync, schedules={})) if e.kind == "sync"]
    assert [(e.id, e.expression, e.params) for e in found] == [
        ("sync:central", "*/15 * * * *", {"peer": "central", "scheduled": True})]


def test_schedules_sync_passes_every_peer_as_a_scheduled_pass(tmp_path):
    found = [e for e in scheduled(_settings(tmp_path, schedules={"sync": "0 * * * *"})) if e.kind == "sync"]
    assert [(e.id, e.params) for e in found] == [("sync", {"scheduled": True})]


def test_passes_with_two_peers_may_run_at_once_but_not_two_with_one(engine):
    runs.queue(engine, "sync", trigger="schedule", params={"peer": "central", "scheduled": True})
    runs.queue(engine, "sync", trigger="schedule", params={"peer": "laptop", "scheduled": True})
    with pytest.raises(ConflictError, match="already in progress with peer central"):
        runs.queue(engine, "sync", trigger="manual", params={"peer": "central"})
