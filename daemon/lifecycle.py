"""The daemon's lifecycle: leadership, schedules, health, signals, shutdown.

Once main.py has opened the database and keyring, `Daemon.run` binds the metrics port
and the control sockets, then READY=1. Only the leader (see leader.py) schedules and
runs jobs; a standby answers status and retries leadership every
`leader_retry_seconds`. SIGTERM stops new work, lets running jobs reach a safe point
within `shutdown_grace_seconds`, and exits 0. SIGHUP re-reads the config: a valid one
replaces schedules and settings, a bad one is refused with a log line and the old one
stays in force; connections are never dropped.

Command handlers (commands*.py) reach the daemon through the public methods of
`Daemon` (require, submit_if_leader, publish, status, health_snapshot...): that is the
seam between the control protocol and the running process. What health reads is in
health.py, the audit/security-event tailer in tailer.py, `config.show`'s redaction in
redact.py.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import select

from strongroom.core import audit, checkpoints
from strongroom.core.auth import rbac
from strongroom.core.auth.users import get_user_by_id
from strongroom.core.backup.configurations import sync_configurations as sync_backup_configurations
from strongroom.core.config import load_settings
from strongroom.core.context import Context
from strongroom.core.crypto.shredded import forget_destroyed
from strongroom.core.db.engine import transaction, translate_error
from strongroom.core.db.models import SyncPeer
from strongroom.core.endpoints import runtime_dir_for
from strongroom.core.errors import ConfigError, ConflictError, PermissionDenied, StrongroomError
from strongroom.core.jobs import export as export_job
from strongroom.core.jobs import on_request_only, runs
from strongroom.core.principal import Principal
from strongroom.core.sync.configured import apply_configured_peers
from strongroom.core.version import VERSION
from strongroom.daemon.control import ControlServer
from strongroom.daemon.health import Health, backup_max_ages
from strongroom.daemon.leader import Leadership
from strongroom.daemon.metrics import Metrics
from strongroom.daemon.notifications import backup_succeeded, job_failed, runs_missed, send_test, sync_peer_failing
from strongroom.daemon.redact import redact_config
from strongroom.daemon.runner import Runner
from strongroom.daemon.scheduler import Scheduler, missed_runs
from strongroom.daemon.sdnotify import Notifier, watchdog_interval
from strongroom.daemon.tailer import Tailer

log = logging.getLogger("strongroom.daemon")
# What a `sync.pass` event carries from a pass's result (counts and figures, never rows).
PASS_FIELDS = ("sent", "received", "conflicts", "quarantined", "decisions", "keys_destroyed", "seconds",
               "clock_skew_seconds", "error", "skipped", "next_attempt_at")


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
        self.metrics = Metrics(ctx.engine, backup_max_ages(ctx.settings), lambda: self.ctx.settings)
        self.control.on_request = lambda code: self.metrics.requests.labels(code).inc()
        self.runner = Runner(ctx, publish=self.publish, on_finish=self._job_finished)
        self.scheduler = Scheduler(ctx.settings, self.submit_if_leader, ctx=ctx)
        self.stopping = asyncio.Event()
        self.reloads = 0
        self.health = Health(ctx, self.metrics.database.compliance)
        self.tailer = Tailer(ctx, self.publish, lambda: self.leadership.is_leader)
        self._health_snapshot: dict = {}
        self._health_began = float("-inf")          # when the kept snapshot's read began (monotonic)
        self._health_lock = threading.Lock()
        self._last_compliance: dict | None = None   # the last `compliance` event's summary
        self._checkpointed_head: int | None = None   # the head the newest checkpoint signed
        self._destroyed_watermark = 0                # the newest key destruction this daemon has seen
        self.metrics_port: int | None = None
        self._last_status = ""

    # -- what command handlers call ----------------------------------------------------------
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

    def publish_security(self, kind: str, **what: str) -> None:
        """A `security` event: what happened (a login and its outcome, an account change),
        never who or from where. Every connected subscriber receives it, whatever their
        permissions or practice: the Security and Users tabs reload on it and read the
        names through commands that check both (security.event.list, user.list)."""
        self.publish("security", {"event": kind, **what})

    def forget_token(self, token: str) -> None:
        self.control.forget_token(token)

    def forget_session(self, session_id) -> None:
        self.control.forget_session(session_id)

    def note_audit_result(self, ok: bool) -> None:
        self.health.note_audit_result(ok)

    def status(self) -> dict:
        return {
            "version": VERSION, "pid": os.getpid(), "host": socket.gethostname(),
            "role": "leader" if self.leadership.is_leader else "standby",
            # Shutting down: answering still while running jobs reach a safe point.
            "stopping": self.stopping.is_set(),
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "database": self.ctx.engine.dialect.name, "reloads": self.reloads,
            "running_jobs": self.runner.active(), "job_kinds": self.runner.kinds(),
            "on_request_kinds": [k for k in on_request_only() if k in self.runner.kinds()],
            "next_runs": self.scheduler.next_runs() if self.leadership.is_leader else {},
            "metrics_port": self.metrics_port,
            # Where the KEK comes from (file, credential, environment, or kms + key ARN): no key.
            "kek": self.ctx.keyring.primary.describe(),
        }

    def control_rates_changed(self) -> None:
        """A user's profile changed: the control server reads rate limits afresh."""
        self.control.rates.forget_limits()

    def health_snapshot(self) -> dict:
        """The health loop's last snapshot. Until its first one lands (at start, or a
        long first read on a loaded machine) the caller's thread takes one itself, so a
        reader never gets a snapshot with its sections missing."""
        if not self._health_snapshot:
            return dict(self._take_health())
        return dict(self._health_snapshot)

    def _take_health(self) -> dict:
        """A fresh snapshot, kept unless one whose read began later is kept already;
        returns the one kept. Reads overlap (the loop's first, slow on a loaded machine,
        and a caller's own before it lands): the later-begun one saw the newer state,
        and a slow read finishing last must not bring back what it saw earlier."""
        began = time.monotonic()
        snapshot = self._read_health()
        with self._health_lock:
            if began >= self._health_began:
                self._health_snapshot, self._health_began = snapshot, began
            return self._health_snapshot

    def redacted_config(self) -> dict:
        data = self.ctx.settings.model_dump(mode="json")
        return redact_config(data)

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

    async def _leadership_step(self) -> None:
        """Take leadership if it is free (and do what a new leader does), or notice that
        it was lost."""
        try:
            was = self.leadership.is_leader
            now = await asyncio.to_thread(self.leadership.try_acquire)
            if now and not was:
                await asyncio.to_thread(self._become_leader)
                self.notifier.status("leader: serving and scheduling")
            elif was and not now:
                log.error("lost leadership (database connection broken); stopping schedules")
                self.scheduler.shutdown()
                self.scheduler = Scheduler(self.ctx.settings, self.submit_if_leader, ctx=self.ctx)
                self.metrics.leader.set(0)
            elif not now:
                self.metrics.leader.set(0)
        except Exception as exc:
            translated = translate_error(exc)
            if translated is None:
                raise
            log.error("leadership check failed", extra={"error": str(translated)})

    async def _leadership_loop(self) -> None:
        """After the first attempt (`run` makes it before READY), one every
        leader_retry_seconds."""
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), self.ctx.settings.daemon.leader_retry_seconds)
                return
            except asyncio.TimeoutError:
                pass
            await self._leadership_step()

    async def _health_loop(self) -> None:
        interval = self.ctx.settings.daemon.health_interval_seconds
        while not self.stopping.is_set():
            try:
                snapshot = await asyncio.to_thread(self._take_health)
                await asyncio.to_thread(self._forget_destroyed_keys)
                self.control.publish("health", snapshot)
                self._publish_compliance_change(snapshot.get("compliance"))
                self._say_status()
                await asyncio.to_thread(self.tailer.publish_new_rows)
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
            self._destroyed_watermark = forget_destroyed(self.ctx.keyring, conn, self._destroyed_watermark)

    def _read_health(self) -> dict:
        return self.health.read(
            role="leader" if self.leadership.is_leader else "standby",
            uptime_seconds=round(time.time() - self.started_at, 1),
            running_jobs=self.runner.active(),
            next_runs=self.scheduler.next_runs() if self.leadership.is_leader else {})

    def _publish_compliance_change(self, compliance: dict | None) -> None:
        """`compliance` (score, threshold, status) when the score or status moved since
        the last one published, so a console showing the report reloads it."""
        if not compliance:
            return
        summary = {k: compliance.get(k) for k in ("score", "threshold", "status", "generated_at")}
        if self._last_compliance is not None and all(
                summary[k] == self._last_compliance[k] for k in ("score", "threshold", "status")):
            return
        self._last_compliance = summary
        self.control.publish("compliance", summary)

    def _say_status(self) -> None:
        """A STATUS= line for `systemctl status`: role and what is running."""
        running = ", ".join(f"{j['kind']} {j['done']}/{j['total'] or '?'}" for j in self.runner.active())
        text = f"{'leader' if self.leadership.is_leader else 'standby'}; " + (f"running {running}" if running else "idle")
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)

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
        self.metrics.set_backup_max_ages(backup_max_ages(new))
        self.health.forget_slow()         # quotas and configurations may have changed
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
        # The first leadership attempt before READY: a daemon that leads has marked the
        # runs a crash left, applied its configured sync peers and backup configurations
        # and started its schedules by the time systemd (or `strongroom` right after
        # `systemctl start`) is told it is up; READY=1 before that let a caller see a
        # crashed run still "running" or a configured peer missing. A daemon that cannot
        # lead (another one does) is ready all the same and keeps trying.
        try:
            await self._leadership_step()
        except BaseException:
            await self.control.close()
            self.metrics.close()
            raise
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
        # Consoles learn it now, not after their silence timeout: their banner goes up
        # while this daemon drains (the PUB socket closes last, in control.close).
        self.control.publish("daemon.stopping", {"grace_seconds": grace})
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
