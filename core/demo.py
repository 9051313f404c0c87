"""Synthetic demo data: plausible-looking and certainly nobody's.

SSNs come from the 9xx area, which is never issued; phone numbers from 555-01xx, the
range reserved for fiction; emails at example.org (RFC 2606). Deterministic for a seed,
so tests and benchmarks see the same data every run.
"""
from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import Connection, select

from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import Client, ClientStatus, PaymentStatus, SessionStatus, SyncPeer, TherapySession
from strongroom.core.repository.changes import current_change_version
from strongroom.core.sync.conflicts import queue_conflict, row_image
from strongroom.core.sync.peers import PUSH, add_peer, set_watermark, synced_tables

FIRST = ("Avery", "Blake", "Casey", "Dana", "Elliot", "Frankie", "Gray", "Harper", "Indy",
         "Jordan", "Kai", "Logan", "Morgan", "Noel", "Oakley", "Parker", "Quinn", "Riley",
         "Sage", "Taylor", "Umi", "Val", "Wren", "Xen", "Yael", "Zion")
LAST = ("Ashford", "Brightwater", "Calloway", "Dunmore", "Everly", "Fairbanks", "Greystone",
        "Hollis", "Ingram", "Jessup", "Kingsley", "Lockhart", "Merriweather", "Northcott",
        "Oakridge", "Pemberton", "Quillfeather", "Ravensworth", "Stroud", "Thistlewood",
        "Underhill", "Vantreight", "Whitlock", "Yarborough", "Zeller")
STREETS = ("Maple", "Cedar", "Willow", "Harbor", "Juniper", "Summit", "Orchard", "Linden")
HISTORY = ("generalised anxiety", "low mood", "sleep difficulty", "work stress",
           "bereavement", "panic episodes", "relationship strain", "adjustment difficulty")
NOTE_PHRASES = (
    "Client reported {h} over the past fortnight.",
    "We reviewed the thought record from last session.",
    "Practised paced breathing; client rated distress 6/10 falling to 3/10.",
    "Agreed homework: behavioural activation schedule, three pleasant activities.",
    "Discussed sleep hygiene and a consistent wake time.",
    "Explored triggers at work; identified two early warning signs.",
    "Client is engaged and motivated; rapport good.",
    "Plan: continue weekly CBT, review goals in four sessions.",
)


def client_records(n: int, seed: int = 7) -> Iterator[dict]:
    rng = random.Random(seed)
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        yield {
            "first_name": first,
            "last_name": last,
            "date_of_birth": date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55)),
            "ssn": f"9{rng.randrange(10, 100)}-{rng.randrange(10, 100)}-{rng.randrange(1000, 10000)}",
            "email": f"{first.lower()}.{last.lower()}{i}@example.org",
            "phone": f"555-01{rng.randrange(0, 100):02d}",
            "address": f"{rng.randrange(1, 999)} {rng.choice(STREETS)} Street, Springfield",
            "emergency_contact": f"{rng.choice(FIRST)} {last}, 555-01{rng.randrange(0, 100):02d}",
            "medical_history": f"Presenting with {rng.choice(HISTORY)}; no known allergies.",
            "notes": None,
            "status": rng.choices(list(ClientStatus), weights=(80, 5, 15))[0],
            "intake_date": date(2024, 1, 1) + timedelta(days=rng.randrange(600)),
        }


def session_records(client_ids: list[uuid.UUID], per_client: int, seed: int = 11,
                    note_bytes: int = 600) -> Iterator[dict]:
    rng = random.Random(seed)
    start = datetime(2025, 1, 6, tzinfo=timezone.utc)
    for client_id in client_ids:
        day = start + timedelta(days=rng.randrange(60))
        for _ in range(per_client):
            note, length = [], 0
            while length < note_bytes:
                note.append(rng.choice(NOTE_PHRASES).format(h=rng.choice(HISTORY)))
                length += len(note[-1])
            when = datetime.combine(day.date(), time(9 + rng.randrange(8)), timezone.utc)
            yield {
                "client_id": client_id,
                "starts_at": when,
                "duration_minutes": rng.choice((50, 50, 50, 80)),
                "session_type": rng.choice(("individual", "individual", "couples", "telehealth")),
                "notes": " ".join(note),
                "status": SessionStatus.COMPLETED if when < datetime.now(timezone.utc) else SessionStatus.SCHEDULED,
                "payment_status": rng.choice((PaymentStatus.PAID, PaymentStatus.PAID, PaymentStatus.PENDING)),
                "price_cents": rng.choice((12000, 15000, 18000)),
            }
            day += timedelta(days=7)


# --- sync conflicts -------------------------------------------------------------------

DEMO_PEERS = (("central", "postgresql+psycopg://sync@central.example.org/strongroom", "both"),
              ("clinic-north", "https://north.example.org/strongroom", "pull"))


def seed_conflicts(conn: Connection, keyring: Keyring, *, seed: int = 7, now: datetime | None = None) -> list[uuid.UUID]:
    """Two synthetic sync peers and three open conflicts on existing demo rows, so the
    console's Sync tab has something to resolve: a client both sites edited (with a
    base), a client with no known common ancestor, and a therapy session. Remote PHI is
    sealed with the row's own key, as a real peer's would be. Needs demo clients (and
    sessions) already in the database; returns the conflict ids (none without rows)."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    clients_t, sessions_t, peers_t = Client.__table__, TherapySession.__table__, SyncPeer.__table__
    clients = conn.execute(select(clients_t).where(clients_t.c.deleted_at.is_(None))
                           .order_by(clients_t.c.id).limit(2)).mappings().all()
    session = conn.execute(select(sessions_t).where(sessions_t.c.deleted_at.is_(None))
                           .order_by(sessions_t.c.id).limit(1)).mappings().first()
    if len(clients) < 2:
        return []
    peer_ids = {}
    for name, url, direction in DEMO_PEERS:
        existing = conn.execute(select(peers_t.c.id).where(peers_t.c.name == name)).scalar()
        peer_ids[name] = existing or add_peer(
            conn, name, url, direction=direction,
            last_sync_at=now - timedelta(hours=2, minutes=5) if direction == "both" else None)
    version = current_change_version(conn)
    for table in synced_tables():
        set_watermark(conn, peer_ids["central"], table.name, PUSH, version)

    def sealed(table: str, row, field: str, value: str) -> str:
        blob = keyring.cipher(conn, row["key_id"]).encrypt_text(value, table, field, row["id"])
        return base64.b64encode(blob).decode()

    def phone() -> str:
        return f"555-01{rng.randrange(0, 100):02d}"

    ids = []
    # 1: both sites changed the phone; the peer also marked the client inactive, while
    # this site corrected the email (the peer still has the old one, as base does).
    first = clients[0]
    local = row_image("clients", first)
    base = {**local, "phone_enc": sealed("clients", first, "phone", phone()),
            "email_enc": sealed("clients", first, "email", f"old.address{rng.randrange(100)}@example.org")}
    remote = {**base, "phone_enc": sealed("clients", first, "phone", phone()), "status": "ACTIVE" if local["status"] == "INACTIVE" else "INACTIVE",
              "sync_version": 900 + rng.randrange(100)}
    ids.append(queue_conflict(conn, peer_id=peer_ids["central"], table_name="clients", row_id=first["id"],
                              base=base, local=local, remote=remote, actor="demo"))
    # 2: no common ancestor known (the row was restored on one side): address and last name.
    second = clients[1]
    local = row_image("clients", second)
    remote = {**local, "address_enc": sealed("clients", second, "address",
                                             f"{rng.randrange(1, 999)} {rng.choice(STREETS)} Street, Shelbyville"),
              "last_name_enc": sealed("clients", second, "last_name", f"{rng.choice(LAST)}-{rng.choice(LAST)}"),
              "sync_version": 900 + rng.randrange(100)}
    ids.append(queue_conflict(conn, peer_id=peer_ids["central"], table_name="clients", row_id=second["id"],
                              base=None, local=local, remote=remote, actor="demo"))
    # 3: a session's notes amended on both sides; the peer extended it and took payment.
    if session is not None:
        local = row_image("therapy_sessions", session)
        base = {**local, "notes_enc": sealed("therapy_sessions", session, "notes",
                                             "Client reported work stress over the past fortnight.")}
        remote = {**base, "notes_enc": sealed("therapy_sessions", session, "notes",
                                              "Client reported work stress; agreed a graded return plan."),
                  "duration_minutes": local["duration_minutes"] + 30,
                  "payment_status": "REFUNDED" if local["payment_status"] == "PAID" else "PAID", "sync_version": 900 + rng.randrange(100)}
        ids.append(queue_conflict(conn, peer_id=peer_ids["central"], table_name="therapy_sessions",
                                  row_id=session["id"], base=base, local=local, remote=remote, actor="demo"))
    return ids


# --- records retention ------------------------------------------------------------------

DEMO_POLICIES = (("clients", 730, 2555), ("therapy_sessions", 540, 2190), ("client_files", 365, None))


def seed_retention(conn: Connection, *, requested_by: str = "user:demo-manager") -> dict:
    """Retention policies for the three clinical tables, a legal hold on one demo client
    and a pending erasure request for another (filed by `requested_by`, so anyone else
    may approve it), so the console's Retention tab has something to show. Needs demo
    clients already in the database; returns what it made."""
    from strongroom.core.retention import erasure, holds, policies

    clients_t = Client.__table__
    ids = list(conn.execute(select(clients_t.c.id).where(clients_t.c.deleted_at.is_(None))
                            .order_by(clients_t.c.id).limit(2)).scalars())
    made: dict = {"policies": [policies.set_policy(conn, table_name=table, archive_after_days=archive,
                                                   delete_after_days=delete, actor="demo").id
                               for table, archive, delete in DEMO_POLICIES]}
    if len(ids) < 2:
        return made
    # Seeding again (a second `demo seed`) adds neither a second hold nor a second request.
    if ids[0] not in holds.active_scope(conn).clients:
        made["hold"] = holds.place_hold(conn, actor="demo", reason="Demo matter 2026-014 (synthetic)",
                                        client_id=ids[0]).id
    if not any(r["client_id"] == ids[1] for r in erasure.list_requests(conn)):
        made["erasure_request"] = erasure.request_erasure(
            conn, client_id=ids[1], actor=requested_by, reason="Demo: client's written request ref D-7")["id"]
    return made
