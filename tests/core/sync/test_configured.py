"""`[sync.peers.NAME]` in the config becomes a sync peer: added, kept in line with the
file, its pause left to the operator, each change audited without the address."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog
from strongroom.core.errors import ValidationError
from strongroom.core.sync import configured
from strongroom.core.sync.peers import get_peer, set_active
from strongroom.core.sync.settings import SyncPeerSettings, SyncSettings

URL = "postgresql://sync:s3cret@central.example.org/strongroom?sslmode=verify-full"


def _settings(**peers) -> SyncSettings:
    return SyncSettings(peers={name: SyncPeerSettings(**values) for name, values in peers.items()})


def test_a_configured_peer_is_added_then_follows_the_file(engine):
    configured.apply_configured_peers(engine, _settings(central={"url": URL}))
    with transaction(engine) as conn:
        peer = get_peer(conn, "central")
        assert (peer["url"], peer["direction"], peer["is_active"]) == (URL, "both", True)
        set_active(conn, "central", False)                     # paused by an operator
    configured.apply_configured_peers(engine, _settings(central={"url": URL, "direction": "pull",
                                                                 "strategies": {"clients": "manual"}}))
    with transaction(engine, read_only=True) as conn:
        peer = get_peer(conn, "central")
        assert (peer["direction"], peer["strategies"], peer["is_active"]) == ("pull", {"clients": "manual"}, False)
        details = conn.execute(select(AuditLog.__table__.c.details).where(
            AuditLog.__table__.c.table_name == "sync_peers").order_by(AuditLog.__table__.c.id)).scalars().all()
    assert len(details) == 2 and "sync_peer_added" in details[0] and "sync_peer_updated" in details[1]
    assert all("s3cret" not in d and "example.org" not in d for d in details)


def test_applying_the_same_file_again_changes_and_audits_nothing(engine):
    settings = _settings(central={"url": URL})
    configured.apply_configured_peers(engine, settings)
    configured.apply_configured_peers(engine, settings)
    with transaction(engine, read_only=True) as conn:
        count = len(conn.execute(select(AuditLog.__table__.c.id).where(
            AuditLog.__table__.c.table_name == "sync_peers")).all())
    assert count == 1


def test_a_peer_the_checks_refuse_is_named_by_its_section_and_the_others_still_apply(engine):
    settings = _settings(far={"url": "postgresql://sync:s3cret@far.example.org/db"}, near={"url": URL})
    with pytest.raises(ValidationError, match=r"\[sync.peers.far\]: a PostgreSQL peer off this machine") as err:
        configured.apply_configured_peers(engine, settings)
    assert "s3cret" not in str(err.value)
    with transaction(engine, read_only=True) as conn:
        assert get_peer(conn, "near")["url"] == URL
