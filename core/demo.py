"""Synthetic demo data: plausible-looking and certainly nobody's.

SSNs come from the 9xx area, which is never issued; phone numbers from 555-01xx, the
range reserved for fiction; emails at example.org (RFC 2606). Deterministic for a seed,
so tests and benchmarks see the same data every run.
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone

from pathlib import Path

from sqlalchemy import Connection, select

from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, ClientStatus, PaymentStatus, SessionStatus, SyncConflict, TherapySession
from strongroom.core.errors import ConfigError
from strongroom.core.principal import Principal
from strongroom.core.repository.clients import create_client, update_client
from strongroom.core.repository.sessions import insert_sessions, update_session
from strongroom.core.sync.peers import add_peer

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


# --- a second site ----------------------------------------------------------------------

SATELLITE = "satellite"


def _quiet(*_args) -> None:
    pass


def seed_second_site(ctx: Context, target: Path, *, actor: str, seed: int = 7) -> dict:
    """A real second site of the demo practice: `target` becomes a SQLite data directory
    that joins this one with its key file (core.sync.join, as `strongroom init --join`),
    registered here as sync peer `satellite`, and a first pass copies every client.
    Then both sites are edited as if offline (a client's phone and a session's notes on
    both: two manual conflicts under the field_level default; two different fields of
    another client: merged; a session amended and a client registered at the satellite:
    received here), a second pass meets them, and one more edit here waits for the next
    pass, so the lag shows a row to send. Synthetic demo data only. Needs this site's
    key in a file and demo clients already committed; returns what it made."""
    from strongroom.core.datadir import init_data_dir, open_data_dir
    from strongroom.core.jobs import sync as sync_job

    if ctx.settings.keys.kek_file is None:
        raise ConfigError("the demo's second site joins with the practice's key file; this data directory "
                          "takes its key from elsewhere ([keys] kek_file is not set)")
    principal = Principal(actor=actor, permissions=frozenset({"*"}))
    joined = init_data_dir(target, practice_name=ctx.settings.practice_name, principal=principal,
                           join_url=ctx.settings.database.url, peer_name="central",
                           kek_file=ctx.settings.keys.kek_file)
    with transaction(ctx.engine) as conn:
        add_peer(conn, SATELLITE, joined.database.url)
    sync_job.run(ctx, {"peer": SATELLITE}, _quiet)
    made: dict = {"peer": SATELLITE, "conflicts": []}
    satellite = open_data_dir(target)
    try:
        with transaction(ctx.engine) as here, transaction(satellite.engine) as there:
            edits = _offline_edits(ctx, here, satellite, there, principal, random.Random(seed))
    finally:
        satellite.close()
    if edits is None:
        return made
    made.update(edits)
    sync_job.run(ctx, {"peer": SATELLITE}, _quiet)
    with transaction(ctx.engine) as conn:
        update_client(conn, ctx.keyring, principal, made["late_client"],
                      {"emergency_contact": f"{random.Random(seed).choice(FIRST)} Hollis, 555-0199"})
        made["conflicts"] = list(conn.execute(
            select(SyncConflict.__table__.c.id).where(SyncConflict.__table__.c.status == "open")
            .order_by(SyncConflict.__table__.c.id)).scalars())
    return made


def _offline_edits(ctx: Context, here: Connection, satellite: Context, there: Connection,
                   principal: Principal, rng: random.Random) -> dict | None:
    """The edits of both sites between two passes (see seed_second_site); None when the
    demo has fewer than three clients to edit. The clients edited are the newest, away from
    the ones the retention demo holds or asks to erase (the oldest)."""
    clients_t, sessions_t = Client.__table__, TherapySession.__table__
    newest = list(here.execute(select(clients_t.c.id).where(clients_t.c.deleted_at.is_(None))
                               .order_by(clients_t.c.id.desc()).limit(3)).scalars())
    if len(newest) < 3:
        return None
    conflicted, merged, late = newest

    def session_of(client_id):
        return here.execute(select(sessions_t.c.id).where(sessions_t.c.client_id == client_id,
                                                          sessions_t.c.deleted_at.is_(None))
                            .order_by(sessions_t.c.id).limit(1)).scalar()

    def phone() -> str:
        return f"555-01{rng.randrange(0, 100):02d}"

    edits = {"email": f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@example.org",
             "address": f"{rng.randrange(1, 999)} {rng.choice(STREETS)} Street, Shelbyville",
             "notes": "Client reported work stress; agreed a graded return plan. (Amended at the satellite.)"}
    # Here: the front desk takes a new phone number and a corrected email, and the
    # clinician amends a session's notes.
    update_client(here, ctx.keyring, principal, conflicted, {"phone": phone()})
    update_client(here, ctx.keyring, principal, merged, {"email": edits["email"]})
    # There, offline: another phone number for the same client, a new address for the
    # other, the same session's notes amended differently, another session amended and
    # a new client registered with a first session.
    update_client(there, satellite.keyring, principal, conflicted, {"phone": phone()})
    update_client(there, satellite.keyring, principal, merged, {"address": edits["address"]})
    made = {"edits": edits, "merged_client": merged, "late_client": late}
    both, amended = session_of(conflicted), session_of(merged)
    if both is not None:
        update_session(here, ctx.keyring, principal, both,
                       {"notes": "Client reported work stress. Addendum: sleep diary reviewed."})
        update_session(there, satellite.keyring, principal, both,
                       {"notes": "Client reported work stress. Addendum: referred for a sleep assessment."})
    if amended is not None:
        update_session(there, satellite.keyring, principal, amended,
                       {"notes": edits["notes"], "payment_status": PaymentStatus.PAID})
        made.update(amended_session=amended, amended_session_client=merged)
    (practice_id,) = there.execute(select(clients_t.c.practice_id).where(clients_t.c.id == merged)).one()
    record = next(client_records(1, seed=rng.randrange(1000)))
    record["email"] = record["email"].replace("0@", ".satellite@")
    made["new_client"] = create_client(there, satellite.keyring, principal, practice_id, record)
    insert_sessions(there, satellite.keyring, principal, session_records([made["new_client"]], 1))
    return made


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


# --- client files ------------------------------------------------------------------------

# Synthetic documents for the first demo clients: a short intake form and a referral
# letter each (plain text: the demo makes nobody's scan up), so the console's files
# view, `files list` and `export --with-files` have content to show.
DEMO_FILES = (
    ("intake-form.txt", "text/plain",
     "Intake form (synthetic demo data)\n\nPresenting concern: {h}.\nPreferred contact: email.\n"),
    ("referral-letter.txt", "text/plain",
     "Referral letter (synthetic demo data)\n\nReferred for weekly CBT for {h}.\nNo known risk.\n"),
)


def seed_files(conn: Connection, ctx: Context, principal: Principal, *, clients: int = 3, seed: int = 7) -> int:
    """DEMO_FILES for the first `clients` live demo clients, stored like any upload
    (sealed in the data directory's files store, audited); none when the first client
    has files already (a second `demo seed`). Returns how many files were added."""
    from strongroom.core.db.models import ClientFile
    from strongroom.core.files.repository import add_file
    from strongroom.core.files.store import open_files_target

    clients_t, files_t = Client.__table__, ClientFile.__table__
    ids = list(conn.execute(select(clients_t.c.id).where(clients_t.c.deleted_at.is_(None))
                            .order_by(clients_t.c.id).limit(clients)).scalars())
    if not ids or conn.execute(select(files_t.c.id).where(files_t.c.client_id == ids[0]).limit(1)).first():
        return 0
    rng = random.Random(seed)
    target = open_files_target(ctx.settings)
    added = 0
    try:
        for client_id in ids:
            for name, content_type, text in DEMO_FILES:
                data = text.format(h=rng.choice(HISTORY)).encode()
                add_file(conn, ctx.keyring, principal, target, ctx.settings.files, client_id, name=name,
                         content_type=content_type, size=len(data), content=[data])
                added += 1
    finally:
        target.close()
    return added
