"""Which snapshots a backup configuration's keep rules keep, and what each needs.

Pure functions over snapshot records (id, started_at by our own clock, proof) and
manifests: keep_last / daily / weekly / monthly / max_age_days, the newest proven
snapshot always kept, and the chain links a kept incremental restores through. The
prune job (core/jobs/prune.py) plans with them; a dry run shows `keep_rules`' reasons.
(The `[backup] retention` settings are these keep rules; records retention, the
clinical records' own policy, is core/retention.)
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from strongroom.core.backup.manifest import Manifest
from strongroom.core.config import KeepPolicy

PROVEN = ("verified", "drilled")


def keep_set(snapshots: list[dict], policy: KeepPolicy, now: datetime) -> set[uuid.UUID]:
    """Which snapshots the policy keeps, before chains are closed over.

    `snapshots`: dicts with id, started_at (our clock), proof; any order.
    keep_last n newest; keep_daily/weekly/monthly: the newest snapshot in each of the
    n most recent days/ISO weeks/months that have one; max_age_days: nothing older
    (except the newest proven snapshot, always kept).
    """
    return set(keep_rules(snapshots, policy, now))


def keep_rules(snapshots: list[dict], policy: KeepPolicy, now: datetime) -> dict[uuid.UUID, list[str]]:
    """The snapshots the policy keeps (as `keep_set`), each with the rules that keep it:
    "last #n", "daily 2026-11-23", "weekly 2026-W48", "monthly 2026-11", "newest verified".
    A dry run shows these, so an operator sees why each snapshot stays."""
    ordered = sorted(snapshots, key=lambda s: s["started_at"], reverse=True)
    rules: dict[uuid.UUID, list[str]] = {s["id"]: [f"last #{n}"]
                                         for n, s in enumerate(ordered[:policy.keep_last], start=1)}
    for name, count, bucket in (("daily", policy.keep_daily, lambda t: t.date().isoformat()),
                                ("weekly", policy.keep_weekly, lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2])),
                                ("monthly", policy.keep_monthly, lambda t: f"{t.year}-{t.month:02d}")):
        seen: list = []
        for snap in ordered:
            key = bucket(snap["started_at"])
            if key not in seen:
                seen.append(key)
                if len(seen) > count:
                    break
                rules.setdefault(snap["id"], []).append(f"{name} {key}")
    if policy.max_age_days:
        cutoff = now - timedelta(days=policy.max_age_days)
        rules = {s["id"]: rules[s["id"]] for s in ordered if s["id"] in rules and s["started_at"] >= cutoff}
    proven = newest_proven(snapshots)
    if proven is not None:
        proof = next(s["proof"] for s in snapshots if s["id"] == proven)
        rules.setdefault(proven, []).append(f"newest {proof}")
    return rules


def newest_proven(snapshots: list[dict]) -> uuid.UUID | None:
    """The newest snapshot (by our clock) proven verified or drilled."""
    proven = [s for s in snapshots if s["proof"] in PROVEN]
    return max(proven, key=lambda s: (s["started_at"], s["id"]))["id"] if proven else None


def ancestors(manifests: dict[uuid.UUID, Manifest], snapshot_id: uuid.UUID) -> list[uuid.UUID]:
    """The snapshot and the links it restores through, newest first."""
    found, current = [], snapshot_id
    while current is not None and current not in found:
        found.append(current)
        current = manifests[current].parent_id if current in manifests else None
    return found


def closure(manifests: dict[uuid.UUID, Manifest], ids) -> set[uuid.UUID]:
    """`ids` and every link they need."""
    return {link for i in ids for link in ancestors(manifests, i)}
