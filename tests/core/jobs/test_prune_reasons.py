"""Why the prune policy keeps each snapshot: the rules `keep_rules` names are the ones
`keep_set` applies, so a dry run's explanation never disagrees with what a run does."""
import uuid
from datetime import datetime, timedelta, timezone

from strongroom.core.config import KeepPolicy
from strongroom.core.backup import keep

NOW = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)  # a Monday, ISO week 48


def _snap(days_ago: float, proof: str = "written") -> dict:
    return {"id": uuid.uuid4(), "started_at": NOW - timedelta(days=days_ago), "proof": proof}


def test_keep_rules_keep_exactly_what_keep_set_keeps():
    snaps = [_snap(d / 3) for d in range(200)] + [_snap(90, "drilled")]
    for policy in (KeepPolicy(), KeepPolicy(keep_last=2, keep_daily=3, keep_weekly=2, keep_monthly=1),
                   KeepPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0, max_age_days=10)):
        assert set(keep.keep_rules(snaps, policy, NOW)) == keep.keep_set(snaps, policy, NOW)


def test_each_kept_snapshot_names_every_rule_that_keeps_it():
    newest, sunday, monday, older_sunday, old_verified = _snap(0), _snap(1), _snap(7), _snap(8), _snap(60, "verified")
    policy = KeepPolicy(keep_last=1, keep_daily=2, keep_weekly=3, keep_monthly=1)
    rules = keep.keep_rules([newest, sunday, monday, older_sunday, old_verified], policy, NOW)
    assert rules[newest["id"]] == ["last #1", "daily 2026-11-23", "weekly 2026-W48", "monthly 2026-11"]
    assert rules[sunday["id"]] == ["daily 2026-11-22", "weekly 2026-W47"]
    assert rules[older_sunday["id"]] == ["weekly 2026-W46"]
    assert rules[old_verified["id"]] == ["newest verified"]
    assert monday["id"] not in rules        # not the newest of its week, day or month


def test_max_age_takes_away_every_rule_but_the_newest_proven():
    old, old_proven = _snap(40), _snap(50, "drilled")
    policy = KeepPolicy(keep_last=5, keep_daily=5, keep_weekly=0, keep_monthly=0, max_age_days=30)
    assert keep.keep_rules([old, old_proven], policy, NOW) == {old_proven["id"]: ["newest drilled"]}
