"""strongroomd: the foreground process systemd runs (Type=notify).

Start-up: load and validate the config (exit 2 on a bad one), open the database and
keyring, bind the control sockets, then READY=1. Only the leader (see leader.py)
schedules and runs jobs; a standby answers status and retries leadership every
`leader_retry_seconds`. SIGTERM stops new work, lets running jobs reach a safe point
within `shutdown_grace_seconds`, and exits 0. SIGHUP re-reads the config: a valid one
replaces schedules and settings, a bad one is refused with a log line and the old one
stays in force; connections are never dropped.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import NoReturn

from strongroom.core import audit, checkpoints
from strongroom.core.compliance import NOT_CONFIGURED
from strongroom.core.auth import rbac
from strongroom.core.auth.users import get_user_by_id
from strongroom.core.backup.configurations import sync_configurations as sync_backup_configurations
from strongroom.core.config import Settings, load_settings, locate_config
from strongroom.core.context import Context, open_context
from strongroom.core.crypto.shredded import forget_destroyed
from strongroom.core.db.engine import transaction, translate_error
from strongroom.core.db.migrate import current_revision, head_revision
from strongroom.core.db.models import AuditLog, IntegrityCheck, SecurityEvent, SyncPeer
from strongroom.core.integrity import is_ok
from strongroom.core.integrity.sync import check_name as sync_check_name
from strongroom.core.sync.conflicts import count_open
from strongroom.core.sync.configured import apply_configured_peers
from strongroom.core.sync.peers import outbound as outbound_peers
from strongroom.core.sync.status import quarantined_by_peer
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConfigError, ConflictError, PermissionDenied, StrongroomError
from strongroom.core.jobs import on_request_only, runs
from strongroom.core.jobs import export as export_job
from strongroom.core.principal import Principal
from strongroom.core.usage import usage
from strongroom.daemon import logs
from strongroom.daemon.control import ControlServer
from strongroom.daemon.leader import Leadership
from strongroom.core.version import VERSION
from strongroom.daemon.metrics import Metrics
from strongroom.daemon.notifications import backup_succeeded, job_failed, runs_missed, send_test, sync_peer_failing
from strongroom.core.endpoints import runtime_dir_for
from strongroom.daemon.runner import Runner
from strongroom.daemon.scheduler import Scheduler, missed_runs, scheduled, trigger_for
from strongroom.daemon.sdnotify import Notifier, watchdog_interval
from sqlalchemy import func, select

log = logging.getLogger("strongroom.daemon")
SECRET_KEYS = ("password", "secret", "token", "kek", "key_file", "credential")
# What a `sync.pass` event carries from a pass's result (counts and figures, never rows).
# Storage usage, backup outcomes and the compliance score count every table's rows and
# score every area: health, read every few seconds, refreshes them at most this often.
HEALTH_SLOW_SECONDS = 60.0
PASS_FIELDS = ("sent", "received", "conflicts", "quarantined", "decisions", "keys_destroyed", "seconds",
               "clock_skew_seconds", "error", "skipped", "next_attempt_at")


def max_age_from_schedule(expression: str, grace: float) -> float:
    """How old the newest success may be before something is wrong: one schedule
    interval plus the misfire grace."""
    trig = trigger_for(expression)
    first = trig.get_next_fire_time(None, utcnow())
    second = trig.get_next_fire_time(first, first)
    return (second - first).total_seconds() + grace



def _sync_consistency(conn, peers: list[str]) -> dict[str, dict]:
    """Per active peer, the integrity job's latest consistency check of the two sites
    (core/integrity/sync.py): its status, what it found (counts, never values) and when;
    a peer never checked is absent."""
    checks = IntegrityCheck.__table__
    out: dict[str, dict] = {}
    for name in peers:
        row = conn.execute(select(checks.c.status, checks.c.actual, checks.c.completed_at)
                           .where(checks.c.check_type == "sync", checks.c.name == sync_check_name(name))
                           .order_by(checks.c.completed_at.desc()).limit(1)).first()
        if row is not None:
            out[name] = {"status": row.status, "actual": row.actual, "checked_at": row.completed_at.isoformat()}
    return out

class Daemon:
    def __init__(self, ctx: Context, config_path: Path) -> None:
        self.ctx = ctx
        self.config_path = config_path
        self.started_at = time.time()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.notifier = Notifier()
        self.runtime_dir = runtime_dir_for(ctx.settings)
        self.leadership = Leadership(ctx.engine, ctx.settings.data_dir)
        self.control = ControlServer(self, self.runtime_dir)
        self.metrics = Metrics(ctx.engine, self._max_ages(ctx.settings), lambda: self.ctx.settings)
        self.control.on_request = lambda code: self.metrics.requests.labels(code).inc()
        self.runner = Runner(ctx, publish=self.publish, on_finish=self._job_finished)
        self.scheduler = Scheduler(ctx.settings, self.submit_if_leader)
        self.stopping = asyncio.Event()
        self.reloads = 0
        self._health: dict = {}
        self._slow_health: tuple[float, dict] | None = None
        self._audit_chain_ok: bool | None = None
        self._audit_chain_checked = None
        self._checkpointed_head: int | None = None   # the head the newest checkpoint signed
        self._last_audit_id = 0
        self._last_security_id = 0
        self.metrics_port: int | None = None
        self._last_status = ""

    # -- helpers used by commands ---------------------------------------------------------
    def _max_ages(self, settings: Settings) -> dict[str, float]:
        """How old each scheduled backup configuration's newest backup may be."""
        return {entry.params.get("configuration", "default"):
                max_age_from_schedule(entry.expression, settings.daemon.misfire_grace_seconds)
                for entry in scheduled(settings) if entry.kind == "backup"}

    def require(self, principal: Principal, permission: str) -> None:
        """Deny unless the principal holds `permission`. For users, rbac.require gives the
        precise reason (an expired grant is named, and recorded as a security event)."""
        if principal.can(permission):
            return
        if principal.user_id is not None:
            with transaction(self.ctx.engine, read_only=True) as conn:
                user = get_user_by_id(conn, principal.user_id)
            rbac.require(self.ctx.engine, user, permission)
        raise PermissionDenied(f"{principal.actor} lacks permission {permission!r}")

    def submit_if_leader(self, kind: str, **kw):
        if not self.leadership.is_leader:
            raise ConflictError("this daemon is a standby; the leader runs jobs")
        return self.runner.submit(kind, **kw)

    def publish(self, topic: str, data: dict) -> None:
        """Thread-safe: hand the event to the loop that owns the PUB socket."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.control.publish, topic, data)

    def publish_security(self, kind: str, data: dict) -> None:
        self.publish("security", {"event": kind, **data})

    def forget_token(self, token: str) -> None:
        self.control.forget_token(token)

    def forget_session(self, session_id) -> None:
        self.control.forget_session(session_id)

    def note_audit_result(self, ok: bool) -> None:
        self._audit_chain_ok = ok
        self._audit_chain_checked = utcnow()

    def status(self) -> dict:
        return {
            "version": VERSION, "pid": os.getpid(), "host": socket.gethostname(),
            "role": "leader" if self.leadership.is_leader else "standby",
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "database": self.ctx.engine.dialect.name, "reloads": self.reloads,
            "running_jobs": self.runner.active(), "job_kinds": self.runner.kinds(),
            "on_request_kinds": [k for k in on_request_only() if k in self.runner.kinds()],
            "next_runs": self.scheduler.next_runs() if self.leadership.is_leader else {},
            "metrics_port": self.metrics_port,
        }

    def health_snapshot(self) -> dict:
        return dict(self._health)

    def redacted_config(self) -> dict:
        data = self.ctx.settings.model_dump(mode="json")
        return _redact(data)

    def notify_test(self, actor: str) -> list[dict]:
        with transaction(self.ctx.engine) as conn:
            audit.append(conn, actor=actor, action="CONFIG", details={"event": "notify_test"})
        return send_test(self.ctx.settings)

    def _job_finished(self, run: runs.Run) -> None:
        self.metrics.job_finished(run)
        if run.job_kind == "sync":
            self._sync_finished(run)
        if run.job_kind == "integrity":
            self._integrity_finished(run)
        if run.status in ("failed", "interrupted"):
                job_failed(self.ctx.settings, run)
        elif run.status == "succeeded" and run.job_kind == "backup":
                backup_succeeded(self.ctx.settings, run)
                self.checkpoint("backup")   # the new repository may hold none yet

    def _integrity_finished(self, run: runs.Run) -> None:
        """Each check of a finished integrity run on the `integrity` topic: its name,
        type, status and one-line verdict. Not its evidence: row ids stay in the run's
        record and `integrity_checks`, for those allowed to read them."""
        for check in (run.result or {}).get("checks") or []:
            self.publish("integrity", {"run_id": str(run.id), "check": check.get("name"),
                                       "status": check.get("status"), "expected": check.get("expected"),
                                       "actual": check.get("actual")})

    def _sync_finished(self, run: runs.Run) -> None:
        """Each pass of a sync run on the `sync.pass` topic (peer, counts, outcome), and a
        notification for a peer whose failures in a row just reached the threshold."""
        passes = (run.result or {}).get("peers") or []
        for entry in passes:
            outcome = "skipped" if "skipped" in entry else "failed" if "error" in entry else "succeeded"
            self.publish("sync.pass", {"run_id": str(run.id), "peer": entry.get("peer"), "outcome": outcome,
                                       **{k: entry[k] for k in PASS_FIELDS if k in entry}})
        failed = [e["peer"] for e in passes if "error" in e]
        if not failed:
            return
        threshold = self.ctx.settings.sync.notify_after_failures
        peers_t = SyncPeer.__table__
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(select(peers_t.c.name, peers_t.c.failures, peers_t.c.last_error)
                                .where(peers_t.c.name.in_(failed))).all()
        for row in rows:
            if row.failures == threshold:
                sync_peer_failing(self.ctx.settings, row.name, row.failures, row.last_error)

    def checkpoint(self, reason: str) -> dict | None:
        """Sign the audit head and keep it outside the database (core/checkpoints.py).
        Only the leader writes; a failure is logged, never fatal: the next one retries."""
        if not self.leadership.is_leader:
            return None
        try:
            cp = checkpoints.take(self.ctx, actor="system", reason=reason)
        except Exception as exc:
            translated = translate_error(exc)
            if translated is None and not isinstance(exc, StrongroomError):
                log.exception("audit checkpoint failed", extra={"reason": reason})
            else:
                log.warning("audit checkpoint failed", extra={"reason": reason, "error": str(translated or exc)})
            return None
        self._checkpointed_head = cp["head_id"]
        log.info("audit checkpoint", extra={"reason": reason, "head_id": cp["head_id"], "places": len(cp["places"])})
        return cp

    async def _checkpoint_loop(self) -> None:
        """While the log grows, a checkpoint every [audit] checkpoint_minutes."""
        minutes = self.ctx.settings.audit.checkpoint_minutes
        while minutes and not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), minutes * 60)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await asyncio.to_thread(self._checkpoint_if_grown)
            except Exception as exc:
                translated = translate_error(exc)
                if translated is None:
                    raise
                log.warning("audit checkpoint skipped", extra={"error": str(translated)})

    def _checkpoint_if_grown(self) -> None:
        with self.ctx.engine.connect() as conn:
            head_id, _ = audit.head(conn)
        if head_id != self._checkpointed_head:
            self.checkpoint("schedule")

    # -- lifecycle ---------------------------------------------------------------------------
    def _become_leader(self) -> None:
        audit.ensure_chain_key(self.ctx.engine, self.ctx.keyring)   # an upgraded database starts sealing
        interrupted = runs.mark_interrupted(self.ctx.engine)
        if interrupted:
            log.warning("runs left by a crash marked interrupted", extra={"count": len(interrupted)})
        exports = export_job.reconcile_interrupted(self.ctx)
        if exports:
            log.warning("exports left by a crash marked interrupted, their files removed",
                        extra={"count": len(exports)})
        self.metrics.leader.set(1)
        sync_backup_configurations(self.ctx.engine, self.ctx.settings)
        self._apply_sync_peers()
        self.scheduler.start()
        self._handle_missed()
        log.info("leader: scheduling jobs", extra={"schedules": dict(self.ctx.settings.schedules)})

    def _apply_sync_peers(self) -> None:
        """[sync.peers.NAME] into sync_peers; a peer the checks refuse is logged (by its
        section, never its address) and the others still apply."""
        try:
            apply_configured_peers(self.ctx.engine, self.ctx.settings.sync)
        except StrongroomError as exc:
            log.error("a configured sync peer was not applied", extra={"error": str(exc)})

    def _handle_missed(self) -> None:
        for miss in missed_runs(self.ctx.settings, self.ctx.engine):
            self.metrics.missed.labels(miss.kind).inc(miss.count)
            log.warning("scheduled runs were missed while the daemon was down",
                        extra={"job": miss.id or miss.kind, "missed": miss.count, "since": miss.first.isoformat()})
            with transaction(self.ctx.engine) as conn:
                audit.append(conn, actor="system", action="INTEGRITY", table_name="job_runs",
                             outcome="missed", details={"job": miss.id or miss.kind, "missed": miss.count,
                                                        "first": miss.first.isoformat()})
                runs_missed(self.ctx.settings, miss.kind, miss.count, miss.first)
            if self.ctx.settings.daemon.catch_up_missed:
                try:
                    self.runner.submit(miss.kind, trigger="catch_up", params=miss.params)
                except StrongroomError as exc:
                    log.warning("catch-up run not started", extra={"job": miss.kind, "error": str(exc)})

    async def _leadership_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                was = self.leadership.is_leader
                now = await asyncio.to_thread(self.leadership.try_acquire)
                if now and not was:
                    await asyncio.to_thread(self._become_leader)
                    self.notifier.status("leader: serving and scheduling")
                elif was and not now:
                    log.error("lost leadership (database connection broken); stopping schedules")
                    self.scheduler.shutdown()
                    self.scheduler = Scheduler(self.ctx.settings, self.submit_if_leader)
                    self.metrics.leader.set(0)
                elif not now:
                    self.metrics.leader.set(0)
            except Exception as exc:
                translated = translate_error(exc)
                if translated is None:
                    raise
                log.error("leadership check failed", extra={"error": str(translated)})
            try:
                await asyncio.wait_for(self.stopping.wait(), self.ctx.settings.daemon.leader_retry_seconds)
            except asyncio.TimeoutError:
                pass

    async def _health_loop(self) -> None:
        interval = self.ctx.settings.daemon.health_interval_seconds
        while not self.stopping.is_set():
            try:
                self._health = await asyncio.to_thread(self._read_health)
                await asyncio.to_thread(self._forget_destroyed_keys)
                self.control.publish("health", self._health)
                self._say_status()
                await asyncio.to_thread(self._publish_new_rows)
            except Exception as exc:
                translated = translate_error(exc)
                if translated is None:
                    log.exception("health snapshot failed")
                else:
                    log.warning("health snapshot failed", extra={"error": str(translated)})
            try:
                await asyncio.wait_for(self.stopping.wait(), min(interval, 1.0))
            except asyncio.TimeoutError:
                pass

    def _forget_destroyed_keys(self) -> None:
        """Keys another process destroyed (the leader's erasure, seen by a standby) leave
        this daemon's key cache within a health interval, not at its next restart."""
        with self.ctx.engine.connect() as conn:
            self._destroyed_watermark = forget_destroyed(self.ctx.keyring, conn,
                                                         getattr(self, "_destroyed_watermark", 0))

    def _read_health(self) -> dict:
        last = runs.last_success(self.ctx.engine)
        now = time.time()
        checks = IntegrityCheck.__table__
        with self.ctx.engine.connect() as conn:
            chain = conn.execute(select(checks.c.status, checks.c.completed_at)
                                 .where(checks.c.check_type == "audit_chain")
                                 .order_by(checks.c.started_at.desc()).limit(1)).first()
            open_conflicts = sum(count_open(conn).values())
            peers_t = SyncPeer.__table__
            outbound = conn.execute(select(peers_t.c.name, peers_t.c.last_sync_at, peers_t.c.failures).where(
                peers_t.c.is_active.is_(True), outbound_peers())).all()
            quarantined = sum(quarantined_by_peer(conn).values())
            consistency = _sync_consistency(conn, [p.name for p in outbound])
        peers = [p.last_sync_at for p in outbound]
        if chain is not None and (self._audit_chain_checked is None or chain.completed_at > self._audit_chain_checked):
            self._audit_chain_ok, self._audit_chain_checked = is_ok(chain.status), chain.completed_at
        integrity = runs.recent(self.ctx.engine, job_kind="integrity", limit=1)
        synced = [p for p in peers if p is not None]
        return {
            "open_conflicts": open_conflicts,
            "sync_peers": len(peers),
            # The stalest active peer; None when there is none or one never synced.
            "sync_lag_seconds": (round(now - min(synced).timestamp(), 1)
                                 if synced and len(synced) == len(peers) else None),
            "sync": {"peers": len(outbound), "failing": sorted(p.name for p in outbound if p.failures),
                     "max_lag_seconds": (round(now - min(synced).timestamp(), 1)
                                         if synced and len(synced) == len(peers) else None),
                     "open_conflicts": open_conflicts, "quarantined": quarantined,
                     "consistency": consistency},
            "integrity": ({"status": integrity[0].status,
                           "age_seconds": (round(now - integrity[0].finished_at.timestamp(), 1)
                                           if integrity[0].finished_at else None)}
                          if integrity else None),
            "role": "leader" if self.leadership.is_leader else "standby",
            "uptime_seconds": round(now - self.started_at, 1),
            "running_jobs": self.runner.active(),
            "last_success": {k: v.isoformat() for k, v in last.items()},
            "last_backup_age_seconds": round(now - last["backup"].timestamp(), 1) if "backup" in last else None,
            "next_runs": self.scheduler.next_runs() if self.leadership.is_leader else {},
            "audit_chain_ok": self._audit_chain_ok,
            **self._read_slow_health(),
        }

    def _read_slow_health(self) -> dict:
        """`storage` (per table, per backup target), `backups` (runs that succeeded and
        failed in the window) and `compliance` (score, threshold, areas not configured),
        as of `usage_as_of`: refreshed at most every HEALTH_SLOW_SECONDS. The compliance report
        is the one the metrics scrape computes (cached there as long)."""
        now = time.monotonic()
        if self._slow_health is None or now - self._slow_health[0] >= HEALTH_SLOW_SECONDS:
            settings = self.ctx.settings
            parts = usage(self.ctx.engine, settings)
            report = self.metrics.database.compliance()
            threshold = settings.compliance_threshold
            parts["compliance"] = {
                "score": report.score, "threshold": threshold,
                "status": "ok" if report.score >= threshold else "below threshold",
                "not_configured": sorted(a for a, v in report.areas.items() if v["status"] == NOT_CONFIGURED),
                "generated_at": report.generated_at.isoformat()}
            parts["usage_as_of"] = utcnow().isoformat()
            self._slow_health = (now, parts)
        return self._slow_health[1]

    def _say_status(self) -> None:
        """A STATUS= line for `systemctl status`: role and what is running."""
        running = ", ".join(f"{j['kind']} {j['done']}/{j['total'] or '?'}" for j in self.runner.active())
        text = f"{'leader' if self.leadership.is_leader else 'standby'}; " + (f"running {running}" if running else "idle")
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)

    def _publish_new_rows(self) -> None:
        """New audit entries and security events, from any process, become PUB events."""
        logs_t, events_t = AuditLog.__table__, SecurityEvent.__table__
        with self.ctx.engine.connect() as conn:
            if not self._last_audit_id:
                self._last_audit_id = conn.execute(select(func.max(logs_t.c.id))).scalar() or 0
                self._last_security_id = conn.execute(select(func.max(events_t.c.id))).scalar() or 0
                return
            for row in conn.execute(select(logs_t.c.id, logs_t.c.occurred_at, logs_t.c.actor, logs_t.c.action,
                                           logs_t.c.table_name, logs_t.c.record_id, logs_t.c.outcome)
                                    .where(logs_t.c.id > self._last_audit_id).order_by(logs_t.c.id).limit(500)).mappings():
                self._last_audit_id = row["id"]
                self.publish("audit", dict(row))
            for row in conn.execute(select(events_t.c.id, events_t.c.occurred_at, events_t.c.event_type,
                                           events_t.c.severity, events_t.c.username, events_t.c.ip_address)
                                    .where(events_t.c.id > self._last_security_id).order_by(events_t.c.id).limit(500)).mappings():
                self._last_security_id = row["id"]
                self.publish("security", dict(row))

    async def _watchdog_loop(self, interval: float) -> None:
        while not self.stopping.is_set():
            self.notifier.watchdog()
            try:
                await asyncio.wait_for(self.stopping.wait(), interval)
            except asyncio.TimeoutError:
                pass

    def reload(self) -> None:
        """SIGHUP: apply a valid new config; keep the old one if the new one is bad."""
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = load_settings(self.config_path)
        except ConfigError as exc:
            log.error("reload refused: the new configuration is invalid; keeping the old one",
                      extra={"error": str(exc)})
            self.notifier.send("READY=1", "STATUS=reload refused: invalid configuration (old one kept)")
            return
        if new.database.url != self.ctx.settings.database.url:
            log.error("reload refused: database.url cannot change without a restart")
            self.notifier.send("READY=1", "STATUS=reload refused: database.url changed (restart needed)")
            return
        self.ctx.settings = new
        self.reloads += 1
        if self.leadership.is_leader:
            sync_backup_configurations(self.ctx.engine, new)
            self._apply_sync_peers()
            self.scheduler.apply(new)
        self.metrics.set_backup_max_ages(self._max_ages(new))
        self._slow_health = None          # quotas and configurations may have changed
        log.info("configuration reloaded", extra={"schedules": dict(new.schedules)})
        self.notifier.send("READY=1", "STATUS=configuration reloaded")

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        m = self.ctx.settings.metrics
        try:
            # The metrics port first: a port in use ends the start before any socket or
            # token exists for a client to find and wait on.
            if m.enabled:
                self.metrics_port = self.metrics.serve(m.listen, m.port)
            await self.control.start()
        except BaseException:
            await self.control.close()      # removes only what this daemon created
            self.metrics.close()
            raise
        for sig, handler in ((signal.SIGTERM, self.stopping.set), (signal.SIGINT, self.stopping.set),
                             (signal.SIGHUP, self.reload)):
            self.loop.add_signal_handler(sig, handler)
        tasks = [asyncio.create_task(self._leadership_loop()), asyncio.create_task(self._health_loop()),
                 asyncio.create_task(self._checkpoint_loop())]
        interval = watchdog_interval()
        if interval:
            tasks.append(asyncio.create_task(self._watchdog_loop(interval)))
        log.info("serving", extra={"socket": str(self.runtime_dir / "control.sock"), "metrics_port": self.metrics_port})
        self.notifier.ready(f"serving on {self.runtime_dir / 'control.sock'}")
        await self.stopping.wait()
        return await self._shutdown(tasks)

    async def _shutdown(self, tasks) -> int:
        grace = self.ctx.settings.daemon.shutdown_grace_seconds
        self.notifier.send("STOPPING=1", "STATUS=stopping: letting running jobs reach a safe point")
        log.info("stopping", extra={"grace_seconds": grace})
        self.scheduler.shutdown()
        left = await asyncio.to_thread(self.runner.shutdown, grace)
        if left:
            log.warning("jobs still running at the end of the grace period", extra={"runs": [str(r) for r in left]})
        await asyncio.to_thread(self.checkpoint, "shutdown")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.control.close()
        self.metrics.close()
        self.leadership.release()
        from strongroom.core.jobs.sync import forget_peer_engines
        forget_peer_engines()                  # connections to peer sites kept between passes
        self.ctx.close()
        self.notifier.close()
        log.info("stopped")
        return 0


def _redact(value, key: str = ""):
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    if isinstance(value, str) and any(s in key.lower() for s in SECRET_KEYS) and not key.endswith("_env"):
        return "<redacted>"
    if key == "url" and isinstance(value, str) and "@" in value and "://" in value:
        scheme, rest = value.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:<redacted>@{host}" if ":" in creds else value
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="strongroomd", description="Strongroom daemon (runs in the foreground).")
    parser.add_argument("--config", help="configuration file (env STRONGROOM_CONFIG)")
    parser.add_argument("--data-dir", help="data directory holding strongroom.toml (env STRONGROOM_DATA_DIR)")
    parser.add_argument("--log-level", default=os.environ.get("STRONGROOM_LOG_LEVEL", "INFO"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    os.umask(0o077)
    logs.setup(args.log_level)
    try:
        path = locate_config(args.config, args.data_dir)
        settings = load_settings(path)
        ctx = open_context(settings)
        revision = current_revision(ctx.engine)
        if revision != head_revision():
            raise ConfigError(f"database schema is at {revision or 'nothing'}, this daemon needs "
                              f"{head_revision()}: run `strongroom db upgrade`")
    except StrongroomError as exc:
        _cannot_start(str(exc), exc.exit_code)
    except Exception as exc:
        translated = translate_error(exc)
        if translated is None:
            raise
        _cannot_start(str(translated), translated.exit_code)
    daemon = Daemon(ctx, path.resolve())
    try:
        code = asyncio.run(daemon.run())
    except StrongroomError as exc:
        _cannot_start(str(exc), exc.exit_code)
    except OSError as exc:      # the runtime directory or a socket path the system refuses
        where = f" ({exc.filename})" if exc.filename else ""
        _cannot_start(f"{exc.strerror or exc}{where}", 1)
    sys.exit(code)


def _cannot_start(message: str, exit_code: int) -> NoReturn:
    """Every start-up failure: one journal entry and one line on stderr, never a traceback."""
    log.error("cannot start", extra={"error": message})
    print(f"strongroomd: error: {message}", file=sys.stderr)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
