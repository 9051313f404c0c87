"""Prometheus metrics, served on 127.0.0.1:9464/metrics by default.

Counters and histograms the daemon updates as things happen live in `Metrics`; state
that lives in the database (locked accounts, failed logins, open conflicts, the audit
chain's last verdict) is read at scrape time by `DatabaseCollector`, cached for a few
seconds so a scrape storm cannot load the database. Labels are job kinds, statuses and
configuration names: never users, clients or anything else that could be PHI.

Two rules keep the alert rules in etc/prometheus honest:
- No label is called `job`: Prometheus sets `job` to the scrape job's name (and renames
  ours to exported_job), so job kinds are labelled `kind`.
- Every series a rule reads exists from the start, at 0: `increase()` over a series
  that appears with its first failure sees no increase, so after every restart the
  first failure of a kind would not alert. Hence the zeros in `_seed_zeros` and for
  backup configurations that never succeeded. (The audit chain verdict is the one
  exception: absent until a first verification, since 0 means broken.)
"""
from __future__ import annotations

import errno
import socket

import logging
import threading
import time
from datetime import datetime
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               make_wsgi_app)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from strongroom.core import compliance
from strongroom.core.db.models import (Backup, BackupConfiguration, ErasureRequest, IntegrityCheck, LegalHold,
                                       SecurityEvent, SyncConflict, SyncPeer, User)
from strongroom.core.sync.peers import list_peers
from strongroom.core.sync.status import quarantined_by_peer
from strongroom.core.db.engine import transaction
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError
from strongroom.core.integrity import is_failure, is_ok
from strongroom.core.jobs import all_kinds, runs, schedulable_kinds
from strongroom.core.version import VERSION

log = logging.getLogger("strongroom.metrics")
CACHE_SECONDS = 5.0
COMPLIANCE_CACHE_SECONDS = 60.0
# The *_created series double the exposition and nothing here alerts on them.
disable_created_metrics()
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400)


class DatabaseCollector:
    """Reads database-held state at scrape time (cached for CACHE_SECONDS)."""

    def __init__(self, engine, settings_of) -> None:
        self._engine = engine
        self._settings_of = settings_of  # a callable: settings change on SIGHUP
        self._lock = threading.Lock()
        self._cached: tuple[float, list] | None = None
        self._compliance_lock = threading.Lock()
        self._compliance: tuple[float, compliance.Report] | None = None

    def describe(self):
        return []

    def collect(self):
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return list(self._cached[1])
            try:
                families = self._read()
            except Exception as exc:  # a scrape must answer even when the database does not
                log.warning("metrics: database read failed", extra={"error": type(exc).__name__})
                families = [GaugeMetricFamily("strongroom_database_up",
                                              "Whether the daemon could read its database at the last scrape", value=0)]
            self._cached = (time.monotonic(), families)
            return list(families)

    def compliance(self) -> compliance.Report:
        """The compliance report, computed at most every COMPLIANCE_CACHE_SECONDS (it reads
        every area's evidence): scrapes and the daemon's health share it."""
        with self._compliance_lock:
            if self._compliance is None or time.monotonic() - self._compliance[0] > COMPLIANCE_CACHE_SECONDS:
                result = compliance.report(self._settings_of(), self._engine)
                # The daemon's periodic look at the score: it also keeps today's entry of
                # the history, so the trend fills in without anyone asking.
                compliance.record_history(self._engine, result)
                self._compliance = (time.monotonic(), result)
            return self._compliance[1]

    def _read(self) -> list:
        users, events = User.__table__, SecurityEvent.__table__
        conflicts, checks = SyncConflict.__table__, IntegrityCheck.__table__
        now = utcnow()
        with self._engine.connect() as conn:
            locked = conn.execute(select(func.count()).select_from(users).where(users.c.locked_until > now)).scalar_one()
            failures = conn.execute(select(func.count()).select_from(events)
                                    .where(events.c.event_type == "login_failed")).scalar_one()
            open_conflicts = conn.execute(select(func.count()).select_from(conflicts)
                                          .where(conflicts.c.status == "open")).scalar_one()
            erasures = conn.execute(select(func.count()).select_from(ErasureRequest.__table__)
                                    .where(ErasureRequest.__table__.c.status == "pending")).scalar_one()
            chain = conn.execute(select(checks.c.status).where(checks.c.check_type == "audit_chain")
                                 .order_by(checks.c.started_at.desc()).limit(1)).scalar()
            backups = Backup.__table__
            newest = conn.execute(select(backups.c.size_bytes, backups.c.stored_bytes)
                                  .where(backups.c.status == "succeeded")
                                  .order_by(backups.c.finished_at.desc()).limit(1)).first()
            proofs = dict(conn.execute(select(backups.c.proof, func.count()).where(backups.c.status == "succeeded")
                                       .group_by(backups.c.proof)).all())
            # Per configuration, from the backups table rather than this process's memory:
            # right after a restart, and for backups run by `strongroom backup run`.
            configs = BackupConfiguration.__table__
            name = func.coalesce(configs.c.name, "default")
            last_success = conn.execute(
                select(name, func.max(backups.c.finished_at))
                .select_from(backups.outerjoin(configs, backups.c.configuration_id == configs.c.id))
                .where(backups.c.status == "succeeded", backups.c.finished_at.is_not(None))
                .group_by(name)).all()
            sync = _sync_families(conn, now)
            integrity = _integrity_families(conn)
        # legal_holds is practice-scoped: on PostgreSQL row-level security shows it only
        # inside a scoped transaction (a plain connection would count nothing).
        with transaction(self._engine, read_only=True) as conn:
            holds = conn.execute(select(func.count()).select_from(LegalHold.__table__)
                                 .where(LegalHold.__table__.c.released_at.is_(None))).scalar_one()
        fams = [
            GaugeMetricFamily("strongroom_database_up", "Whether the daemon could read its database at the last scrape", value=1),
            GaugeMetricFamily("strongroom_accounts_locked", "Accounts currently locked", value=locked),
            CounterMetricFamily("strongroom_login_failures", "Failed logins recorded as security events", value=failures),
            GaugeMetricFamily("strongroom_sync_conflicts_open", "Sync conflicts waiting for a person", value=open_conflicts),
            GaugeMetricFamily("strongroom_legal_holds_active", "Legal holds in force (retention and erasure blocked)",
                              value=holds),
            GaugeMetricFamily("strongroom_erasure_requests_pending", "Erasure requests waiting for a second person",
                              value=erasures),
        ]
        fams += sync
        fams += integrity
        if chain is not None:
            fams.append(GaugeMetricFamily("strongroom_audit_chain_ok",
                                          "1 if the last audit chain verification passed, else 0",
                                          value=1 if is_ok(chain) else 0))
        if newest is not None:
            size = GaugeMetricFamily("strongroom_backup_size_bytes", "Newest successful backup: logical and stored bytes",
                                     labels=["kind"])
            size.add_metric(["logical"], newest.size_bytes or 0)
            size.add_metric(["stored"], newest.stored_bytes or 0)
            fams.append(size)
        settings = self._settings_of()
        # 0 for a configured one that never succeeded: StrongroomNeverBackedUp reads it.
        last_seconds = {name: 0.0 for name in ["default", *settings.backup.configurations]}
        last_seconds.update({configuration: when.timestamp() for configuration, when in last_success})
        last = GaugeMetricFamily("strongroom_backup_last_success_timestamp_seconds",
                                 "When each backup configuration last backed up successfully (unix time, "
                                 "0 for never)", labels=["configuration"])
        for configuration, seconds in sorted(last_seconds.items()):
            last.add_metric([configuration], seconds)
        fams.append(last)
        ladder = GaugeMetricFamily("strongroom_backup_snapshots", "Snapshots by how far they are proven "
                                   "(written, verified, drilled)", labels=["proof"])
        for level in ("written", "verified", "drilled"):
            ladder.add_metric([level], proofs.get(level, 0))
        fams.append(ladder)
        fams.append(GaugeMetricFamily("strongroom_compliance_score", "Compliance score, 0-100 (source weights)",
                                      value=self.compliance().score))
        fams.append(GaugeMetricFamily("strongroom_compliance_threshold", "Score below which compliance alerts",
                                      value=settings.compliance_threshold))
        return fams


def _integrity_families(conn) -> list:
    """Per integrity check, by its name (a table or a sync peer's name at most, never a
    row or a value): the latest verdict and when it was reached. A check that has never
    run has no series: 0 would claim it passed."""
    checks = IntegrityCheck.__table__
    newest = (select(checks.c.name, func.max(checks.c.completed_at).label("at"))
              .where(checks.c.completed_at.is_not(None)).group_by(checks.c.name).subquery())
    rows = conn.execute(select(checks.c.name, checks.c.status, checks.c.completed_at)
                        .join(newest, (checks.c.name == newest.c.name) & (checks.c.completed_at == newest.c.at))
                        .order_by(checks.c.name)).all()
    status = GaugeMetricFamily("strongroom_integrity_check_status", "Latest verdict of each integrity check: "
                               "0 ok, 1 warn, 2 fail", labels=["check"])
    last = GaugeMetricFamily("strongroom_integrity_check_last_run_timestamp_seconds",
                             "When each integrity check last ran (unix time)", labels=["check"])
    seen = set()
    for row in rows:
        if row.name in seen:           # two rows with one completion time: the first
            continue
        seen.add(row.name)
        # A number an alert can compare: ok 0, warn 1, fail 2 (older rows: passed/failed).
        value = 0 if is_ok(row.status) else 2 if is_failure(row.status) else 1
        status.add_metric([row.name], value)
        last.add_metric([row.name], row.completed_at.timestamp())
    return [status, last]


def _sync_families(conn, now: datetime) -> list:
    """Per sync peer this site reaches (labelled by the peer's name, which an operator
    chose; never a site's data): lag, rows not yet sent, failures in a row; and the
    quarantine's size. A peer that never synced lags since it was added."""
    lag = GaugeMetricFamily("strongroom_sync_lag_seconds", "Seconds since the last successful sync pass with "
                            "each peer (since it was added, if never)", labels=["peer"])
    pending = GaugeMetricFamily("strongroom_sync_pending_rows", "Local changes each peer has not received yet",
                                labels=["peer"])
    failures = GaugeMetricFamily("strongroom_sync_peer_failures", "Failed sync passes in a row with each peer",
                                 labels=["peer"])
    created = dict(conn.execute(select(SyncPeer.__table__.c.id, SyncPeer.__table__.c.created_at)).all())
    for peer in list_peers(conn, now=now):
        if peer["inbound"] or not peer["is_active"]:
            continue
        since = peer["last_sync_at"] or created.get(peer["id"]) or now
        lag.add_metric([peer["name"]], max(0.0, (now - since).total_seconds()))
        pending.add_metric([peer["name"]], peer["pending_changes"] or 0)
        failures.add_metric([peer["name"]], peer["failures"])
    quarantined = GaugeMetricFamily("strongroom_sync_quarantined", "Rows from peers held in quarantine (open)",
                                    value=sum(quarantined_by_peer(conn).values()))
    return [lag, pending, failures, quarantined]


# How often the endpoint's thread looks for a stop request. prometheus_client's own
# start_http_server serves with socketserver's default of half a second, so every
# daemon stop waited a quarter of a second on average for it (a test suite that starts
# a thousand daemons waited minutes); a twentieth of a second costs nothing when idle.
_POLL_SECONDS = 0.05


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:   # noqa: A002 - the stdlib's signature
        """Scrapes are not logged (a scrape every 15 s would fill the journal)."""


def _serve(listen: str, port: int, registry: CollectorRegistry) -> ThreadingWSGIServer:
    """The metrics endpoint on its own daemon thread, as prometheus_client's
    start_http_server makes it (a threading WSGI server, IPv4 or IPv6 by the address),
    but stopping as soon as asked."""
    family, _, _, _, address = socket.getaddrinfo(listen, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    server = make_server(address[0], port, make_wsgi_app(registry), Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": _POLL_SECONDS},
                     name="strongroom-metrics", daemon=True).start()
    return server


class Metrics:
    def __init__(self, engine, backup_max_ages: dict[str, float], settings_of) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.up = Gauge("strongroom_up", "1 while the daemon runs", registry=r)
        self.up.set(1)
        self.build = Gauge("strongroom_build_info", "Daemon build", ["version"], registry=r)
        self.build.labels(VERSION).set(1)
        # Missed runs are counted as the daemon starts, usually before Prometheus's first
        # scrape of it: StrongroomMissedRuns reads this to alert on them without increase().
        self.start_time = Gauge("strongroom_start_time_seconds", "When this daemon started (unix time)", registry=r)
        self.start_time.set_to_current_time()
        self.leader = Gauge("strongroom_leader", "1 if this daemon schedules and runs jobs, 0 on standby", registry=r)
        self.job_runs = Counter("strongroom_job_runs", "Job runs finished, by kind and final status",
                                ["kind", "status"], registry=r)
        self.job_duration = Histogram("strongroom_job_duration_seconds", "Job run duration",
                                      ["kind"], buckets=DURATION_BUCKETS, registry=r)
        self.job_last_success = Gauge("strongroom_job_last_success_timestamp_seconds",
                                      "When each job kind last succeeded (unix time)", ["kind"], registry=r)
        self.backup_max_age = Gauge("strongroom_backup_max_age_seconds",
                                    "How old the last successful backup may be, from its schedule",
                                    ["configuration"], registry=r)
        self.missed = Counter("strongroom_missed_runs", "Scheduled runs missed while the daemon was down",
                              ["kind"], registry=r)
        self.requests = Counter("strongroom_control_requests", "Control requests answered, by outcome code",
                                ["code"], registry=r)
        self.export_rows = Counter("strongroom_export_rows", "Rows written by exports that succeeded, by format",
                                   ["format"], registry=r)
        self.retention_rows = Counter("strongroom_retention_rows", "Clinical rows records retention archived or "
                                      "deleted, by table", ["table", "action"], registry=r)
        self.sync_rows = Counter("strongroom_sync_rows", "Rows sync passes sent to and received from each peer",
                                 ["peer", "direction"], registry=r)
        self.sync_pass_seconds = Gauge("strongroom_sync_pass_duration_seconds",
                                       "How long the last sync pass with each peer took", ["peer"], registry=r)
        self.audit_chain_ok = None
        self.set_backup_max_ages(backup_max_ages)
        self.database = DatabaseCollector(engine, settings_of)
        r.register(self.database)
        self._seed_zeros()
        self._seed(engine)
        self._server = None

    def _seed_zeros(self) -> None:
        """Create the counters the alert rules take increase() of, at 0 (see the module doc)."""
        for kind in all_kinds():
            for status in runs.FINISHED:
                self.job_runs.labels(kind, status.value)
        for kind in schedulable_kinds():
            self.missed.labels(kind)

    def _seed(self, engine) -> None:
        for kind, when in runs.last_success(engine).items():
            self._set_success(kind, when)

    def _set_success(self, kind: str, when: datetime) -> None:
        self.job_last_success.labels(kind).set(when.timestamp())

    def set_backup_max_ages(self, ages: dict[str, float]) -> None:
        """Per scheduled backup configuration; an unscheduled one has no limit to alert on."""
        self.backup_max_age.clear()
        for configuration, seconds in ages.items():
            self.backup_max_age.labels(configuration).set(seconds)

    def job_finished(self, run: runs.Run) -> None:
        self.job_runs.labels(run.job_kind, run.status).inc()
        if run.duration_seconds is not None:
            self.job_duration.labels(run.job_kind).observe(run.duration_seconds)
        if run.status == "succeeded" and run.finished_at:
            self._set_success(run.job_kind, run.finished_at)
        if run.job_kind == "export" and run.status == "succeeded" and run.result:
            self.export_rows.labels(run.result.get("format", "unknown")).inc(run.result.get("row_count") or 0)
        if run.job_kind == "sync" and run.result:
            for entry in run.result.get("peers") or []:
                if "sent" not in entry:        # skipped, or failed before counting
                    continue
                self.sync_rows.labels(entry["peer"], "sent").inc(entry["sent"] or 0)
                self.sync_rows.labels(entry["peer"], "received").inc(entry["received"] or 0)
                self.sync_pass_seconds.labels(entry["peer"]).set(entry.get("seconds") or 0)
        if run.job_kind == "retention" and run.status == "succeeded" and run.result and not run.result.get("dry_run"):
            for table, counts in (run.result.get("tables") or {}).items():
                for action in ("archived", "deleted"):
                    self.retention_rows.labels(table, action).inc(counts.get(action) or 0)

    def serve(self, listen: str, port: int) -> int:
        """Start the HTTP endpoint; returns the bound port (useful with port 0). A port
        that cannot be bound is a ConflictError naming the setting, not a traceback."""
        try:
            self._server = _serve(listen, port, self.registry)
        except OSError as exc:
            why = "is already in use (another strongroomd?)" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc.strerror}"
            raise ConflictError(f"metrics.port {port} on {listen} {why}; free it, or set [metrics] port "
                                "(0 picks a free one) or enabled = false") from None
        return self._server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
