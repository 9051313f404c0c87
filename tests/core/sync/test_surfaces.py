"""What the surfaces show of real passes. Lag in rows is what the peer has not got yet:
a row this site received from the peer is not counted as a change to send it back (it
never is sent back: no echo). A conflict a pass queues should carry the version both
sites last agreed on, so a person sees base, local and remote side by side."""
from __future__ import annotations

from strongroom.core.db.engine import transaction
from strongroom.core.repository.clients import update_client
from strongroom.core.principal import SYSTEM
from strongroom.core.sync.conflicts import list_conflicts
from strongroom.core.sync.peers import list_peers
from tests.core.conftest import WRITER, client_ids


def _pending(site, peer_name: str) -> int:
    with transaction(site.engine, read_only=True) as conn:
        return next(p for p in list_peers(conn) if p["name"] == peer_name)["pending_changes"]


def test_rows_received_from_a_peer_are_not_counted_as_changes_to_send_it(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    assert _pending(laptop, first_site.name) == 0
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, client_ids(first_site)[0], {"phone": "555-0001"})
    laptop.sync(first_site)                                  # pulls the edit, sends nothing back
    assert _pending(laptop, first_site.name) == 0


def test_a_conflict_queued_by_a_pass_carries_the_base_both_sites_agreed_on(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    for site, phone in ((first_site, "555-0001"), (laptop, "555-0002")):
        with transaction(site.engine) as conn:
            update_client(conn, site.keyring, WRITER, cid, {"phone": phone})
    laptop.sync(first_site)
    with transaction(laptop.engine, read_only=True) as conn:
        (conflict,) = list_conflicts(conn, laptop.keyring, SYSTEM)
    assert conflict["fields"] == ["phone"] and conflict["has_base"]
