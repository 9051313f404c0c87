"""Sync job: one pass with each peer (or the one asked for), keys then every table,
pushed and pulled (core.sync.passes).

Around each pass: the peer's database is opened with its own keyring instance (the
audit seal of each database is its own), the two clocks are compared (timestamp_based
stops deciding beyond the configured skew), a pass that fails for a transient reason
(the connection dropped) is tried again from the last committed watermark, and the
outcome lands on the peer's record: last success, or failures in a row with the last
error and when a scheduled pass will try again (backoff doubling up to an hour). One
SYNC audit entry per pass records its counts.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import SyncState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import DatabaseUnavailableError, NotFoundError, StrongroomError
from strongroom.core.jobs.kinds import parse
from strongroom.core.sync import peers as peer_store
from strongroom.core.sync.merge import Policy
from strongroom.core.sync.passes import PassOptions, Side, run_pass
from strongroom.core.sync.tables import synced

_state = SyncState.__table__
TRANSIENT = (OperationalError, DatabaseUnavailableError)


class SyncFailure(StrongroomError):
    """A pass failed for one or more peers; the result lists each."""

    def __init__(self, message: str, result: dict) -> None:
        super().__init__(message)
        self.result = result


def clock_skew(local: Engine, remote: Engine) -> float | None:
    """Seconds the peer's database clock is ahead of ours (None when it cannot tell: a
    SQLite peer shares this machine's clock, so 0)."""
    if remote.dialect.name != "postgresql":
        return 0.0
    with remote.connect() as conn:
        before = utcnow()
        theirs = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        after = utcnow()
    return round((theirs - (before + (after - before) / 2)).total_seconds(), 3)


def policies(ctx: Context, peer: dict, skew: float | None) -> dict[str, Policy]:
    skew_ok = skew is None or abs(skew) <= ctx.settings.sync.clock_skew_seconds
    out = {}
    for spec in synced():
        table = ctx.settings.sync.table(spec.name)
        out[spec.name] = Policy(ctx.settings.sync.strategy(spec.name, peer.get("strategies")), table.fallback, skew_ok)
    return out


def _due_tables(ctx: Context, peer_id, now: datetime) -> frozenset[str]:
    """Enabled tables whose interval has passed since their last pass with this peer."""
    with transaction(ctx.engine, read_only=True) as conn:
        last = {r.table_name: r.updated_at for r in conn.execute(
            select(_state.c.table_name, _state.c.updated_at).where(_state.c.peer_id == peer_id))}
    due = set()
    for spec in synced():
        table = ctx.settings.sync.table(spec.name)
        if not table.enabled:
            continue
        seen = last.get(spec.name)
        if table.interval_minutes and seen is not None and now - seen < timedelta(minutes=table.interval_minutes):
            continue
        due.add(spec.name)
    return frozenset(due)


# Peer databases stay connected between passes (a scheduled pass every few minutes need
# not reconnect), each with the keyring instance that seals audit entries written there.
_ENGINES: dict[tuple[str, str], tuple[Engine, Keyring]] = {}
MAX_PEER_ENGINES = 16


def _peer_engine(ctx: Context, url: str) -> tuple[Engine, Keyring]:
    key = (url, ctx.keyring.kek_id)
    found = _ENGINES.get(key)
    if found is None:
        if len(_ENGINES) >= MAX_PEER_ENGINES:
            old_key = next(iter(_ENGINES))
            _ENGINES.pop(old_key)[0].dispose()
        engine = make_engine(url)
        keyring = Keyring(load_keks(ctx.settings.keys))
        audit.seal_with(engine, keyring)
        found = _ENGINES[key] = (engine, keyring)
    return found


def forget_peer_engines() -> None:
    """Close every kept peer connection (peers changed, or the daemon stops)."""
    while _ENGINES:
        _ENGINES.popitem()[1][0].dispose()


def _active_peers(ctx: Context) -> list[dict]:
    with transaction(ctx.engine, read_only=True) as conn:
        return peer_store.active_outbound(conn)


def sync_peer(ctx: Context, peer: dict, *, push: bool, pull: bool, scheduled: bool, progress) -> dict:
    """One pass with one peer, retried on transient failures; records the outcome.
    `progress(message)` is told what the pass is doing."""
    now = utcnow()
    direction = peer["direction"]
    tables = _due_tables(ctx, peer["id"], now) if scheduled else frozenset(
        s.name for s in synced() if ctx.settings.sync.table(s.name).enabled)
    attempts = 1 + max(ctx.settings.sync.table(s.name).retry_attempts for s in synced())
    delay = max(ctx.settings.sync.table(s.name).retry_delay_seconds for s in synced())
    batch = min(ctx.settings.sync.table(s.name).batch_size for s in synced())
    remote, keyring = _peer_engine(ctx, peer["url"])
    started = time.monotonic()
    try:
        for attempt in range(1, attempts + 1):
            try:
                skew = clock_skew(ctx.engine, remote)
                options = PassOptions(batch_size=batch, policies=policies(ctx, peer, skew), tables=tables,
                                      push=push and direction in ("both", "push"),
                                      pull=pull and direction in ("both", "pull"))
                result = run_pass(Side(ctx.engine, ctx.keyring, label="local"),
                                  Side(remote, keyring, label=peer["name"]), peer["id"], options,
                                  lambda message: progress(f"{peer['name']}: {message}"))
                break
            except TRANSIENT:
                remote.dispose()           # a dropped connection is not offered again
                if attempt == attempts:
                    raise
                time.sleep(delay)
    except Exception as exc:
        message = _describe(exc)
        with transaction(ctx.engine) as conn:
            failures = peer_store.record_failure(conn, peer["id"], error=message, now=utcnow(),
                                                 retry_delay_seconds=ctx.settings.sync.retry_delay_seconds)
            audit.append(conn, actor="system", action="SYNC", table_name="sync_peers", record_id=peer["id"],
                         outcome="failure", details={"event": "pass_failed", "peer": peer["name"],
                                                     "failures": failures, "error": message[:200]})
        raise
    seconds = round(time.monotonic() - started, 3)
    totals = _totals(result)
    with transaction(ctx.engine) as conn:
        peer_store.record_success(conn, peer["id"], site=result["peer_site"], now=utcnow(), skew_seconds=skew)
        audit.append(conn, actor="system", action="SYNC", table_name="sync_peers", record_id=peer["id"],
                     details={"event": "pass", "peer": peer["name"], "seconds": seconds, **totals})
    return {"peer": peer["name"], "seconds": seconds, "clock_skew_seconds": skew, "tables": result, **totals}


def _totals(result: dict) -> dict[str, int]:
    totals = {"sent": 0, "received": 0, "conflicts": 0, "quarantined": 0, "decisions": 0, "keys_destroyed": 0}
    for direction in ("push", "pull"):
        tables = result[direction]
        for name, counts in tables.items():
            if name == "data_keys":
                totals["keys_destroyed"] += counts["destroyed"]
                continue
            totals["sent" if direction == "push" else "received"] += counts["applied"]
            for key in ("conflicts", "quarantined", "decisions"):
                totals[key] += counts[key]
    return totals


def _describe(exc: BaseException) -> str:
    """A failure fit for the peer record and the audit: our own errors as they are,
    driver errors by class only (their text can carry a URL or a row's values)."""
    if isinstance(exc, StrongroomError):
        return str(exc)[:500]
    if isinstance(exc, DBAPIError):
        return f"database error talking to the peer ({type(exc.orig).__name__ if exc.orig else type(exc).__name__})"
    return f"{type(exc).__name__}"


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Sync with `peer`, or with every active peer; fails if any pass failed, after
    trying the others."""
    asked = parse("sync", params)
    peers = _active_peers(ctx)
    if asked.peer is not None:
        peers = [p for p in peers if p["name"] == asked.peer]
        if not peers:
            raise NotFoundError("no active sync peer by that name (see strongroom sync peer list)")
    elif not peers:
        raise NotFoundError("no sync peers: add one with strongroom sync peer add NAME URL")
    now = utcnow()
    results, failed = [], []
    for n, peer in enumerate(peers, 1):
        if asked.scheduled and peer["next_attempt_at"] is not None and peer["next_attempt_at"] > now:
            results.append({"peer": peer["name"], "skipped": "waiting to retry",
                            "next_attempt_at": peer["next_attempt_at"].isoformat()})
            continue
        progress(n - 1, len(peers), f"syncing with {peer['name']}")
        try:
            # One unit per run, peers: the pass's own steps are told in the message.
            results.append(sync_peer(ctx, peer, push=asked.push, pull=asked.pull, scheduled=asked.scheduled,
                                     progress=lambda message, n=n: progress(n - 1, len(peers), message)))
        except Exception as exc:
            failed.append(peer["name"])
            results.append({"peer": peer["name"], "error": _describe(exc)})
    progress(len(peers), len(peers), "every peer done")
    result = {"peers": results, "failed": failed}
    if failed:
        raise SyncFailure(f"sync failed with {', '.join(failed)}", result)
    return result
