"""The KEKs a site's live keys use: found without reading every key (a pass with nothing
to move must not grow with the practice)."""
from __future__ import annotations

from sqlalchemy import text

from strongroom.core.db.engine import transaction
from strongroom.core.sync.keys import _LIVE_KEKS, kek_ids_in_use


def _plan(conn) -> str:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL enable_seqscan = off"))   # a tiny table is scanned anyway; ask what it can do
        return "\n".join(conn.execute(text("EXPLAIN " + _LIVE_KEKS.text)).scalars())
    return "\n".join(str(r[3]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + _LIVE_KEKS.text)))


def test_the_live_keks_are_found_through_the_partial_index(first_site):
    with transaction(first_site.engine) as conn:
        plan = _plan(conn)
        assert "ix_data_keys_live_kek" in plan
        assert kek_ids_in_use(conn) == set(first_site.keyring.kek_ids())


def test_a_destroyed_key_under_another_kek_does_not_count(first_site):
    with transaction(first_site.engine) as conn:
        conn.execute(text("UPDATE data_keys SET kek_id = 'retired-kek', state = 'destroyed' "
                          "WHERE id = (SELECT id FROM data_keys WHERE purpose = 'client' ORDER BY id LIMIT 1)"))
        assert kek_ids_in_use(conn) == set(first_site.keyring.kek_ids())
        conn.execute(text("UPDATE data_keys SET kek_id = 'other-kek' "
                          "WHERE id = (SELECT id FROM data_keys WHERE purpose = 'client' ORDER BY id DESC LIMIT 1)"))
        assert kek_ids_in_use(conn) == set(first_site.keyring.kek_ids()) | {"other-kek"}
        conn.rollback()
