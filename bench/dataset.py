"""Benchmark dataset: a practice at --scale (1 = 100k clients, 300k sessions with 1-2 KB
notes, 50k audit rows; about 550 MB in PostgreSQL), written through the repository so
every PHI field is really encrypted.

    .venv/bin/python bench/dataset.py --url postgresql+psycopg://postgres@127.0.0.1/db --scale 1
"""
from __future__ import annotations

import argparse
import time
from datetime import timedelta

from sqlalchemy import insert

from strongroom.core import audit
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.migrate import upgrade
from strongroom.core.db.models import AuditLog
from strongroom.core.db.types import utcnow
from strongroom.core.demo import client_records, session_records
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice, list_practices
from strongroom.core.repository.sessions import insert_sessions

SLICE = 2000


def generate(url: str, keyring: Keyring, scale: float, *, echo=print) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    from strongroom.core import audit
    audit.seal_with(engine, keyring)     # entries are sealed, as through a data directory
    n_clients = int(100_000 * scale)
    started = time.monotonic()
    records = client_records(n_clients, seed=3)
    with transaction(engine) as conn:
        existing = list_practices(conn)
        practice = existing[0]["id"] if existing else create_practice(conn, SYSTEM, "Benchmark Practice")
    done = sessions = 0
    while done < n_clients:
        created: list = []
        with transaction(engine) as conn:
            batch = [next(records) for _ in range(min(SLICE, n_clients - done))]
            insert_clients(conn, keyring, SYSTEM, practice, batch, created=created)
            sessions += insert_sessions(conn, keyring, SYSTEM,
                                        session_records(created, 3, seed=done, note_bytes=1500))
        done += len(created)
        echo(f"\r  {done}/{n_clients} clients, {sessions} sessions", end="", flush=True)
    audit_rows = _audit_rows(engine, int(50_000 * scale), keyring)
    echo(f"\n  generated in {time.monotonic() - started:.0f}s")
    engine.dispose()
    return {"clients": n_clients, "sessions": sessions, "audit_rows": audit_rows}


def _audit_rows(engine, n: int, keyring: Keyring) -> int:
    """Chain-valid, sealed audit rows, built here in bulk (the chain rule is
    audit.record_hash, the seal audit.seal under the chain key)."""
    with transaction(engine) as conn:
        key = audit.chain_key(conn, keyring)
        last_id, prev = audit.head(conn)
        next_id = (last_id or 0) + 1
        base = utcnow()
        for start in range(0, n, 5000):
            rows = []
            for i in range(start, min(n, start + 5000)):
                row = {"id": next_id, "occurred_at": base + timedelta(microseconds=i), "actor": "user:bench",
                       "session_id": None, "action": "READ", "table_name": "clients", "record_id": str(i),
                       "ip_address": "127.0.0.1", "user_agent": None, "outcome": "success",
                       "details": audit.canonical_json({"count": 1, "phi": True}), "prev_hash": prev}
                row["hash"] = audit.record_hash(row)
                row["mac"] = audit.seal(key, row["hash"]) if key else None
                prev = row["hash"]
                next_id += 1
                rows.append(row)
            conn.execute(insert(AuditLog.__table__), rows)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('audit_logs', 'id'), {next_id - 1})")
    return n


if __name__ == "__main__":
    from strongroom.core.crypto.kek import Kek, generate_kek

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    print(generate(args.url, Keyring([Kek(generate_kek(), "bench")]), args.scale))
