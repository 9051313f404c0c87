"""Deciding what happens when a version of a row arrives from a peer.

Pure functions of the two versions and their metadata, so every site reaches the same
decision for the same pair of versions, whichever receives first:

- the remote version has been seen here (its vector is dominated by ours): nothing;
- ours has been seen there (ours is dominated): the remote version replaces ours;
- neither has seen the other (concurrent edits): the table's strategy decides.

Strategies (per table, per peer; core.sync.settings gives the defaults):

- `last_write_wins`: the version with the higher HLC wins, ties by site id;
- `timestamp_based`: the version with the later `updated_at` wins, ties as above; when
  the two sites' clocks differ by more than the configured bound the decision is not
  trusted and the pair goes to the manual queue;
- `field_level`: a three-way merge by field: a field changed on one side only (the other
  side's version has seen the edit that set ours) takes that side's value; a field
  changed on both sides to different values, and a delete against an edit, go to the
  manual queue (or, when configured, to last write wins). Clinical free text is never
  merged within the text: a field is the unit. Versions sealed under different keys
  (key rotation on one side) are not mixed field by field;
- `manual`: every concurrent pair is queued for a person; neither side is overwritten.

Erasure wins over everything: once the row's client key is destroyed, a tombstone beats
any live version and a live version never replaces a tombstone.

Every automatic decision that overwrote a value is returned with the fields it
overwrote and the rule, for the caller to audit (names only, never values).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from strongroom.core.sync.stamp import Meta, compare, merged, seen
from strongroom.core.sync.tables import SyncTable

SKIP, APPLY, CONFLICT = "skip", "apply", "conflict"


@dataclass
class Decision:
    action: str                      # skip | apply | conflict
    values: Mapping | None = None    # the row to write (apply); read, never changed: it may be the remote row itself
    meta: Meta | None = None         # the metadata to store with it (apply), or the updated local meta
    rule: str | None = None          # fast_forward | last_write_wins | timestamp_based | field_level | erasure
    overwritten: list[str] = field(default_factory=list)   # local fields whose value was replaced by a rule
    lost: list[str] = field(default_factory=list)          # remote fields whose value a rule refused
    conflict_fields: list[str] = field(default_factory=list)
    # The kept version must become a new edit of this site, newer than the remote one
    # (which had seen ours): otherwise the peer would keep the version it holds.
    tick: bool = False


@dataclass(frozen=True)
class Policy:
    strategy: str
    fallback: str = "manual"        # for field_level: manual | last_write_wins
    skew_ok: bool = True            # timestamp_based: the pair's clocks are within the bound


def _order(row: Mapping, meta: Meta) -> tuple:
    return (meta.hlc, meta.origin)


def _differing(spec: SyncTable, a: Meta, b: Meta, equal: frozenset[str] = frozenset()) -> list[str]:
    return sorted(f for f in spec.fields if a.hashes.get(f) != b.hashes.get(f) and f not in equal)


def _whole(spec: SyncTable, local: Mapping, lmeta: Meta, remote: Mapping, rmeta: Meta, remote_wins: bool,
           rule: str, equal: frozenset[str] = frozenset()) -> Decision:
    differing = _differing(spec, lmeta, rmeta, equal)
    vv = merged(lmeta.vv, rmeta.vv)
    if remote_wins:
        meta = Meta(rmeta.origin, rmeta.hlc, vv, dict(rmeta.dots), dict(rmeta.hashes), pending=lmeta.pending)
        return Decision(APPLY, dict(remote), meta, rule, overwritten=differing)
    meta = Meta(lmeta.origin, lmeta.hlc, vv, dict(lmeta.dots), dict(lmeta.hashes), pending=lmeta.pending)
    # Nothing of ours changes, but our vector now covers the remote version: the peer
    # takes ours next time without deciding again. The row is rewritten so that the new
    # vector reaches other peers too.
    return Decision(APPLY, dict(local), meta, rule, lost=differing)


def _is_tombstone(row: Mapping) -> bool:
    return row.get("deleted_at") is not None


def decide(spec: SyncTable, local: Mapping | None, lmeta: Meta | None, remote: Mapping, rmeta: Meta,
           policy: Policy, *, erased: bool = False, equal: frozenset[str] = frozenset()) -> Decision:
    """What to do with `remote` (a full row and its metadata) given our version.

    `equal`: fields whose stored forms differ but whose values are the same (two sites
    wrote the same value; each sealed it with its own nonce). The caller learns them by
    opening both versions when a first decision was a conflict: the same value written
    twice is not a conflict, and no value is lost by keeping either."""
    if local is None or lmeta is None:
        if local is not None:
            # A row we hold but never stamped cannot happen after stamping; treat it as
            # concurrent with an empty history so nothing is overwritten silently.
            lmeta = Meta("", 0, {}, {}, {})
        else:
            return Decision(APPLY, remote, rmeta.copy(), "new")
    order = compare(lmeta.vv, rmeta.vv)
    if order in ("equal", "after"):
        return Decision(SKIP)
    if erased and _is_tombstone(local) and not _is_tombstone(remote):
        decision = _whole(spec, local, lmeta, remote, rmeta, False, "erasure")
        decision.tick = order == "before"     # the peer's live version had seen our tombstone
        return decision
    if order == "before":
        meta = rmeta.copy()
        meta.pending = lmeta.pending
        return Decision(APPLY, remote, meta, "fast_forward")
    # Concurrent.
    if erased and (_is_tombstone(local) or _is_tombstone(remote)):
        remote_wins = _is_tombstone(remote) and (not _is_tombstone(local)
                                                 or _order(remote, rmeta) > _order(local, lmeta))
        return _whole(spec, local, lmeta, remote, rmeta, remote_wins, "erasure")
    remote_later = _order(remote, rmeta) > _order(local, lmeta)
    if policy.strategy == "manual" or (policy.strategy == "timestamp_based" and not policy.skew_ok):
        differing = _differing(spec, lmeta, rmeta, equal)
        if not differing:
            return _whole(spec, local, lmeta, remote, rmeta, remote_later, "same_values", equal)
        return Decision(CONFLICT, conflict_fields=differing)
    if policy.strategy == "last_write_wins":
        return _whole(spec, local, lmeta, remote, rmeta, remote_later, "last_write_wins", equal)
    if policy.strategy == "timestamp_based":
        wins = (remote["updated_at"], rmeta.hlc, rmeta.origin) > (local["updated_at"], lmeta.hlc, lmeta.origin)
        return _whole(spec, local, lmeta, remote, rmeta, wins, "timestamp_based", equal)
    return _field_level(spec, local, lmeta, remote, rmeta, policy, equal)


def _field_level(spec: SyncTable, local: Mapping, lmeta: Meta, remote: Mapping, rmeta: Meta,
                 policy: Policy, equal: frozenset[str] = frozenset()) -> Decision:
    take_remote: list[str] = []
    both: list[str] = []
    for name in spec.fields:
        if lmeta.hashes.get(name) == rmeta.hashes.get(name):
            continue
        ldot, rdot = lmeta.dots.get(name), rmeta.dots.get(name)
        if name in equal:
            # The same value on both sides: keep the form with the later dot, so every
            # site keeps the same ciphertext.
            if (rdot or ["", 0])[::-1] > (ldot or ["", 0])[::-1]:
                take_remote.append(name)
            continue
        if ldot is not None and seen(rmeta.vv, ldot):
            take_remote.append(name)          # they changed it after seeing ours
        elif rdot is not None and seen(lmeta.vv, rdot):
            continue                          # we changed it after seeing theirs
        else:
            both.append(name)
    changed_here = [n for n in spec.fields
                    if n not in take_remote and n not in equal and lmeta.hashes.get(n) != rmeta.hashes.get(n)]
    delete_vs_edit = ("deleted_at" in take_remote and bool(changed_here)) or (
        "deleted_at" in changed_here and bool(take_remote))
    keys_differ = local.get("key_id") != remote.get("key_id")
    if both or delete_vs_edit or (keys_differ and take_remote and changed_here):
        fields = sorted(set(both) | ({"deleted_at"} if delete_vs_edit else set()))
        if keys_differ:
            fields = _differing(spec, lmeta, rmeta, equal)
        if policy.fallback == "last_write_wins":
            return _whole(spec, local, lmeta, remote, rmeta, _order(remote, rmeta) > _order(local, lmeta),
                          "last_write_wins", equal)
        return Decision(CONFLICT, conflict_fields=fields)
    if keys_differ and take_remote:
        # Everything that differs came from them: take their whole version (and key).
        return _whole(spec, local, lmeta, remote, rmeta, True, "field_level")
    values = dict(local)
    dots = dict(lmeta.dots)
    hashes = dict(lmeta.hashes)
    for name in take_remote:
        for column in spec.fields[name]:
            values[column] = remote[column]
        dots[name] = list(rmeta.dots[name])
        hashes[name] = rmeta.hashes[name]
    values["updated_at"] = max(local["updated_at"], remote["updated_at"])
    top = max((lmeta.hlc, lmeta.origin), (rmeta.hlc, rmeta.origin))
    meta = Meta(top[1], top[0], merged(lmeta.vv, rmeta.vv), dots, hashes, pending=lmeta.pending)
    return Decision(APPLY, values, meta, "field_level")
