"""Backup retention ("prune"): forget snapshots the policy no longer keeps (or the one
snapshot an operator names), compact chains, then delete chunks no remaining snapshot
references.

Ransomware-minded rules:
- Snapshot times come from this database's `backups` rows, written by our own clock
  when each backup ran, never from the repository: a planted manifest with a
  far-future date cannot make the policy think the good snapshots are old. Snapshots
  the database does not know are never deleted here, only reported.
- The newest snapshot proven `verified` or `drilled` is always kept.
- Every kept snapshot still restores on its own. A kept incremental keeps its chain,
  unless compaction (core.jobs.compaction, retention `compact`) first moves the kept
  links onto a new full base synthesised from the chain; the replaced originals are
  then "superseded".
- Deleting happens under the repository's exclusive lock, so never beside a backup or
  a compaction (whose new or reused chunks no manifest references yet); under that
  lock the plan is checked again against every manifest then present, and a snapshot
  any remaining snapshot depends on is not deleted, whatever the plan said.
- Four-eyes mode (configuration `require_approval`): a prune or forget only files a
  request saying what would be forgotten and who asked, timed by our clock. Nothing is
  deleted until a different person runs the prune with that `request_id` before it
  expires; that run re-computes the plan and refuses if it would now forget anything
  the request did not list.

The keep rules' maths is core/backup/keep.py and the four-eyes requests are
core/backup/prune_requests.py; this module plans, and carries a plan out.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from strongroom.core import audit
from strongroom.core.backup import configurations, keybag
from strongroom.core.backup import prune_requests
from strongroom.core.backup.keep import ancestors, closure, keep_rules, keep_set, newest_proven
from strongroom.core.backup.prune_requests import SCHEDULER
from strongroom.core.backup.manifest import Manifest
from strongroom.core.backup.repository import Repository
from strongroom.core.config import KeepPolicy
from strongroom.core.context import Context
from strongroom.core.jobs.kinds import parse
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup, BackupPruneRequest
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, StrongroomError
from strongroom.core.jobs import compaction
from strongroom.core.backup.snapshots import MAX_CHAIN, open_configured

_requests = BackupPruneRequest.__table__
_backups = Backup.__table__


@dataclass
class Plan:
    """What a prune would do: forget (data points that go), compactions (whose
    superseded originals are replaced, not lost) and what it leaves alone."""

    forget: list[uuid.UUID]
    rewrites: list[compaction.Rewrite] = field(default_factory=list)
    kept: int = 0
    unknown: list[uuid.UUID] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    leftover: list[uuid.UUID] = field(default_factory=list)  # superseded earlier, still present
    # Every snapshot in the repository with what the plan does to it and why (`explain`).
    snapshots: list[dict[str, Any]] = field(default_factory=list)

    @property
    def superseded(self) -> list[uuid.UUID]:
        """Snapshots that go because an equal replacement exists (or will)."""
        return [*(i for r in self.rewrites for i in r.superseded), *self.leftover]

    def as_dict(self) -> dict[str, Any]:
        return {"forgotten": [str(i) for i in self.forget], "kept": self.kept,
                "unknown_snapshots_left_alone": [str(i) for i in self.unknown],
                "compactions": [r.as_dict() for r in self.rewrites], "compaction_skipped": self.skipped,
                "would_supersede": [str(i) for i in self.superseded], "snapshots": self.snapshots}


@dataclass
class _State:
    manifests: dict[uuid.UUID, Manifest]
    ours: list[dict]          # snapshots the database knows as good, in the repository
    unknown: list[uuid.UUID]
    superseded: list[uuid.UUID]  # replaced by compaction, manifest still present


def _state(ctx: Context, repo: Repository) -> _State:
    with ctx.engine.connect() as conn:
        rows = {r.id: dict(r._mapping) for r in conn.execute(
            select(_backups.c.id, _backups.c.started_at, _backups.c.proof, _backups.c.status))}
    in_repo = repo.list_snapshots()
    manifests = {i: repo.read_manifest(i) for i in in_repo}
    known = {i: rows[i] for i in in_repo if i in rows and rows[i]["status"] == "succeeded"}
    superseded = [i for i in in_repo if i in rows and rows[i]["status"] == "superseded"]
    return _State(manifests, list(known.values()), [i for i in in_repo if i not in rows], superseded)


def _linear_chains(manifests: dict[uuid.UUID, Manifest]) -> list[list[uuid.UUID]]:
    """Chains base first, for the bases whose descendants form one line (a chain that
    branches, which a crash between manifest and database row can cause, is left whole)."""
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    for m in manifests.values():
        if m.parent_id is not None:
            children.setdefault(m.parent_id, []).append(m.snapshot_id)
    chains = []
    for m in manifests.values():
        if m.parent_id is not None:
            continue
        chain = [m.snapshot_id]
        while len(children.get(chain[-1], [])) == 1:
            chain.append(children[chain[-1]][0])
        if not children.get(chain[-1]):
            chains.append(chain)
    return chains


def plan_policy(state: _State, cfg: configurations.Configuration, now: datetime,
                newest: uuid.UUID | None) -> Plan:
    """The retention policy's plan: which data points go, which chains get compacted."""
    keep = keep_set(state.ours, cfg.retention, now)
    ours = {s["id"] for s in state.ours}
    rewrites: list[compaction.Rewrite] = []
    skipped: list[str] = []
    if cfg.retention.compact:
        linear = {c[0]: c for c in _linear_chains(state.manifests)}
        for base, chain in linear.items():
            kept_at = [n for n, i in enumerate(chain) if i in keep]
            if not kept_at:
                continue
            if not set(chain) <= ours:
                skipped.append(f"chain from {base}: holds snapshots the database does not know")
            elif kept_at[0] > 0:
                rewrites.append(compaction.Rewrite(tuple(chain), kept_at[0], "base_forgotten"))
            elif len(chain) >= MAX_CHAIN and chain[-1] == newest:
                rewrites.append(compaction.Rewrite(tuple(chain), len(chain) - 1, "chain_limit"))
        for base in {m.snapshot_id for m in state.manifests.values() if m.parent_id is None} - set(linear):
            if base in closure(state.manifests, keep):
                skipped.append(f"chain from {base}: branches; kept whole")
    the_plan = _forget_after(state, keep, rewrites, skipped)
    the_plan.snapshots = explain(state, the_plan, keep_rules(state.ours, cfg.retention, now), cfg.retention, now)
    return the_plan


def explain(state: _State, the_plan: Plan, rules: dict[uuid.UUID, list[str]], policy: KeepPolicy,
            now: datetime) -> list[dict[str, Any]]:
    """Each snapshot in the repository, newest first, with its action (keep, forget,
    replace, leave) and the reasons: the keep rules, the kept snapshots that restore
    through it, the compaction replacing it, or why nothing keeps it. Ids, dates and
    counts only."""
    ours = {s["id"]: s for s in state.ours}
    forget = set(the_plan.forget)
    replaced = {i: f"replaced by a compacted copy ({r.reason})" for r in the_plan.rewrites for i in r.superseded}
    replaced.update({i: "already replaced by a compacted copy" for i in the_plan.leftover})
    kept_tips = [i for i in rules if i not in replaced]
    out = []
    for snapshot_id, manifest in state.manifests.items():
        row = ours.get(snapshot_id)
        if snapshot_id in replaced:
            action, reasons = "replace", [*rules.get(snapshot_id, []), replaced[snapshot_id]]
        elif snapshot_id in forget:
            action, reasons = "forget", [_why_not_kept(row, policy, now)]
        elif row is None:
            action, reasons = "leave", ["not recorded as a good snapshot in this database; never deleted from here"]
        else:
            action, reasons = "keep", list(rules.get(snapshot_id, []))
            needing = sorted((i for i in kept_tips if i != snapshot_id and snapshot_id in ancestors(state.manifests, i)),
                             key=lambda i: ours[i]["started_at"], reverse=True)
            if needing:
                more = f" and {len(needing) - 1} more" if len(needing) > 1 else ""
                reasons.append(f"chain link of {needing[0]}{more}")
            reasons = reasons or ["needed by a snapshot the plan keeps"]
        out.append({"snapshot_id": str(snapshot_id), "kind": manifest.kind,
                    "parent_id": str(manifest.parent_id) if manifest.parent_id else None,
                    "started_at": row["started_at"].isoformat() if row else None,
                    "proof": row["proof"] if row else None, "action": action, "reasons": reasons})
    out.sort(key=lambda s: (s["started_at"] or "", s["snapshot_id"]), reverse=True)
    return out


def _why_not_kept(row: dict[str, Any] | None, policy: KeepPolicy, now: datetime) -> str:
    if row is not None and policy.max_age_days:
        if row["started_at"] < now - timedelta(days=policy.max_age_days):
            return f"older than max_age_days ({policy.max_age_days})"
    return "no keep rule"


def _forget_after(state: _State, keep: set[uuid.UUID], rewrites: list[compaction.Rewrite],
                  skipped: list[str]) -> Plan:
    """The data points forgotten once `rewrites` are done: the links of a rewritten
    chain before its new base are needed only by what the policy keeps among them."""
    superseded = {i for r in rewrites for i in r.superseded} | set(state.superseded)
    needed = closure(state.manifests, keep - superseded)
    forget = [s["id"] for s in state.ours if s["id"] not in needed and s["id"] not in superseded]
    kept = len((needed - superseded) & set(state.manifests)) + len(superseded)
    return Plan(forget=forget, rewrites=rewrites, kept=kept, unknown=state.unknown, skipped=skipped,
                leftover=[i for i in state.superseded if i not in {j for r in rewrites for j in r.superseded}])


def plan_forget(state: _State, snapshot_id: uuid.UUID) -> Plan:
    """The plan for forgetting one named snapshot; ConflictError when it must stay."""
    ours = {s["id"]: s for s in state.ours}
    if snapshot_id not in state.manifests:
        raise NotFoundError(f"snapshot {snapshot_id} is not in the repository")
    if snapshot_id not in ours:
        raise ConflictError(f"snapshot {snapshot_id} is not recorded as a good snapshot in this database; "
                            "it is not forgotten from here")
    if snapshot_id == newest_proven(state.ours):
        raise ConflictError(f"snapshot {snapshot_id} is the newest verified snapshot; it is always kept")
    dependants = [i for i in state.manifests if i != snapshot_id and snapshot_id in ancestors(state.manifests, i)]
    if dependants:
        raise ConflictError(f"snapshot {snapshot_id} is a link {len(dependants)} other snapshot(s) restore "
                            f"through (first: {dependants[0]}); forget those first, or let prune compact the chain")
    return Plan(forget=[snapshot_id], kept=len(state.manifests) - 1, unknown=state.unknown)


def plan(ctx: Context, repo: Repository, cfg: configurations.Configuration, snapshot_id: uuid.UUID | None,
         now: datetime) -> Plan:
    """The plan `run` would carry out: forget `snapshot_id`, or (None) apply the keep
    rules. Nothing is changed."""
    from strongroom.core.backup.snapshots import newest_snapshot

    state = _state(ctx, repo)
    if snapshot_id is not None:
        return plan_forget(state, snapshot_id)
    return plan_policy(state, cfg, now, newest_snapshot(ctx.engine, list(state.manifests)))


# --- the job -----------------------------------------------------------------------------

def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Apply the retention policy of backup configuration `configuration` (default
    "default"), or forget the one snapshot `snapshot_id`; `dry_run` only reports.
    In four-eyes mode this files a request instead, and a run with `request_id` by a
    different person carries an approved request out (a request the scheduler filed is
    first endorsed by one person, then approved by another: `_endorse`)."""
    asked = parse("prune", params)
    actor = params.get("actor", SCHEDULER)
    now = utcnow()
    request = None
    configuration, snapshot_id = asked.configuration, asked.snapshot_id
    if asked.request_id:
        request = prune_requests.check_approval(ctx, asked.request_id, actor, now)
        if request["requested_by"] == SCHEDULER:
            return {"forgotten": [], "dry_run": False, "chunks_deleted": 0,
                    "would_forget": list(request["snapshot_ids"]), "pending_request": prune_requests.endorse(ctx, request, actor)}
        with ctx.engine.connect() as conn:
            name = conn.execute(select(configurations._table.c.name).where(
                configurations._table.c.id == request["configuration_id"])).scalar_one()
        configuration = name
        if request["kind"] == "forget":
            snapshot_id = uuid.UUID(str(request["snapshot_ids"][0]))
    cfg, repo = open_configured(ctx, {"configuration": configuration})
    the_plan = plan(ctx, repo, cfg, snapshot_id, now)
    kind = "forget" if snapshot_id else "prune"
    result: dict[str, Any] = {**the_plan.as_dict(), "configuration": cfg.name, "chunks_deleted": 0,
                              "dry_run": asked.dry_run, "superseded": [], "compacted": []}
    if result["dry_run"]:
        return result
    if cfg.require_approval and request is None:
        if not the_plan.forget and not the_plan.superseded:
            return result
        filed = prune_requests.file_request(ctx, cfg, the_plan, kind, actor, now)
        return {**result, "forgotten": [], "would_forget": result["forgotten"], "pending_request": filed}
    if request is not None:
        extra = {str(i) for i in the_plan.forget} - set(request["snapshot_ids"])
        approved_superseded = set(request["plan"].get("superseded", []))
        extra |= {str(i) for i in the_plan.superseded} - approved_superseded
        if extra:
            prune_requests.close_request(ctx, request["id"], actor, "refused",
                           f"the plan now also removes {len(extra)} snapshot(s) the request did not list")
            raise ConflictError(f"request {request['id']}: the plan has grown since it was filed "
                                f"({len(extra)} more snapshot(s) would go); nothing deleted; "
                                "run prune again to file a new request")
    try:
        outcome = _execute(ctx, repo, cfg, the_plan, snapshot_id is not None, actor, progress)
    except StrongroomError as exc:
        if request is not None:
            prune_requests.close_request(ctx, request["id"], actor, "pending", None, note=str(exc))
        raise
    result.update(outcome)
    if request is not None:
        prune_requests.close_request(ctx, request["id"], actor, "executed", None)
        result["approved_request"] = str(request["id"])
    return result


def _execute(ctx: Context, repo: Repository, cfg: configurations.Configuration, the_plan: Plan,
             forgetting_one: bool, actor: str, progress) -> dict[str, Any]:
    """Compact, then delete under the exclusive lock what no remaining snapshot needs."""
    replaced: dict[uuid.UUID, uuid.UUID] = {}
    done: list[compaction.Rewrite] = []
    skipped = list(the_plan.skipped)
    for n, rewrite in enumerate(the_plan.rewrites, 1):
        # A prune counts the snapshots it forgets (one unit per run): compaction's own
        # counts (records read, bytes written and read back) are told in the message.
        def compacting(_done: int, _total: int | None, message: str, n: int = n) -> None:
            progress(0, None, f"compacting chain {n}/{len(the_plan.rewrites)}: {message}")
        try:
            replaced.update(compaction.compact(ctx, repo, cfg, rewrite, compacting, actor=actor))
            done.append(rewrite)
        except (StrongroomError, ValueError) as exc:
            # The chain stays whole: its snapshots still restore, nothing of it is forgotten.
            skipped.append(f"chain from {rewrite.chain[0]}: compaction failed: {exc}")
    if done != the_plan.rewrites:
        state = _state(ctx, repo)
        keep = keep_set(state.ours, cfg.retention, utcnow()) if not forgetting_one else \
            {s["id"] for s in state.ours} - set(the_plan.forget)
        planned = set(the_plan.forget)
        the_plan = _forget_after(state, keep | set(replaced.values()), done, skipped)
        the_plan.forget = [i for i in the_plan.forget if i in planned]  # never more than planned
    delete = [*the_plan.forget, *replaced, *the_plan.leftover]
    lock = repo.acquire_lock("exclusive", "prune")
    try:
        present = {i: repo.read_manifest(i) for i in repo.list_snapshots()}
        # Checked again under the lock: anything that arrived since the plan (a backup
        # chained onto a snapshot about to go) keeps what it restores through.
        still_needed = closure(present, [i for i in present if i not in set(delete)])
        deleted = [i for i in delete if i in present and i not in still_needed]
        for n, snapshot_id in enumerate(deleted, 1):
            repo.delete_manifest(snapshot_id)
            progress(n, len(deleted), "forgetting snapshots")
        live = [present[i] for i in present if i not in set(deleted)]
        # Keys only forgotten snapshots needed (DEKs retired by a rotation) leave the key
        # bag now: after this no object of the repository holds them.
        before = keybag.read(repo)
        after = keybag.after_prune(ctx.engine, repo, {m.snapshot_id: m.created_at for m in live})
        keys_dropped = sorted(str(k) for k in set(before.keys if before else ()) - set(after.keys))
        chunks = 0
        for key in repo.unreferenced_chunks(live, lock):
            repo.target.delete(key)
            chunks += 1
    finally:
        lock.release()
    gone_forever = set(the_plan.forget)
    forgotten = [i for i in deleted if i in gone_forever]
    superseded = [i for i in deleted if i not in gone_forever]
    with transaction(ctx.engine) as conn:
        if forgotten:
            conn.execute(update(_backups).where(_backups.c.id.in_(forgotten)).values(status="forgotten"))
        for snapshot_id in deleted:
            # Superseded rows were marked (with their replacement) when it was recorded.
            audit.append(conn, actor=actor, action="DELETE", table_name="backups", record_id=snapshot_id,
                         details={"configuration": cfg.name,
                                  "event": "forgotten" if snapshot_id in gone_forever else "superseded"})
        audit.append(conn, actor=actor, action="RETENTION", table_name="backups",
                     details={"forgotten": len(forgotten), "superseded": len(superseded), "chunks_deleted": chunks,
                              "unknown_left": len(the_plan.unknown), "configuration": cfg.name,
                              "kept_because_needed": len(set(delete) - set(deleted)),
                              "keys_dropped": keys_dropped})
    return {"forgotten": [str(i) for i in forgotten], "superseded": [str(i) for i in superseded],
            "compacted": [{"from": str(o), "to": str(n)} for o, n in replaced.items()],
            "chunks_deleted": chunks, "compaction_skipped": skipped, "keys_dropped": keys_dropped}
