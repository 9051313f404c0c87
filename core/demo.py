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

from strongroom.core.db.models import ClientStatus, PaymentStatus, SessionStatus

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
            note = []
            while sum(len(p) for p in note) < note_bytes:
                note.append(rng.choice(NOTE_PHRASES).format(h=rng.choice(HISTORY)))
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
