"""Fixtures that build real things: a fresh SQLite file, a fresh PostgreSQL database.

Every test that takes `db_url` (or anything built on it) runs twice: on SQLite and, when
a server answers at $STRONGROOM_TEST_PG_DSN (default postgres@127.0.0.1:5432/test), on
PostgreSQL. Each run migrates one template database once; each test gets its own copy
(SQLite: a file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE, or an earlier test's
copy put back as the template was and proven so: tests/pgcopies.py).
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from strongroom.core.config import Argon2Settings, AuthSettings, DatabaseSettings, KeySettings, Settings
from strongroom.core.context import Context, open_context
from strongroom.core.crypto.kek import generate_kek, write_kek_file
from strongroom.core.db.engine import make_engine
from strongroom.core.db.migrate import upgrade
from tests.pgcopies import Copies, admin

# Every daemon the suite starts (in process or as a child) checks each successful reply
# against the command's declared result model (daemon/control.py): a mismatch is an
# `internal` error the test sees.
os.environ.setdefault("STRONGROOM_CHECK_RESULTS", "1")

PG_DSN = os.environ.get("STRONGROOM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_RUN = f"sr_t{os.getpid()}_{uuid.uuid4().hex[:6]}"
FAST_ARGON2 = Argon2Settings(time_cost=1, memory_kib=8, parallelism=1)


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        # Asked for explicitly (or in CI): an unreachable server fails the run, no skip.
        if "STRONGROOM_TEST_PG_DSN" in os.environ or os.environ.get("STRONGROOM_TEST_REQUIRE_PG"):
            raise
        return False


PG_AVAILABLE = _pg_available()


def pytest_collection_modifyitems(items: list) -> None:
    """Tests marked `slow` (tens of seconds each: the README walk-through, a practice's
    day, the browser) run first. `make test` spreads the suite over workers that take
    work from each other's queues, but a test already started cannot be taken: one of
    these begun last kept a worker busy for a minute after the others had finished.
    The order within each group is kept."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pg_url(dbname: str) -> str:
    return make_url(PG_DSN).set(drivername="postgresql+psycopg", database=dbname).render_as_string(hide_password=False)


def libpq_url(dbname: str) -> str:
    return make_url(PG_DSN).set(database=dbname).render_as_string(hide_password=False)


def pg_admin(sql: str) -> None:
    admin(PG_DSN, sql)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    with sqlite3.connect(path) as raw:  # fold the WAL in, so copying one file copies all
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


_copies: dict[str, Copies] = {}


@pytest.fixture(scope="session")
def pg_template():
    if not PG_AVAILABLE:
        pytest.skip("PostgreSQL is not answering at " + make_url(PG_DSN).render_as_string())
    name = f"{_RUN}_tmpl"
    pg_admin(f'CREATE DATABASE "{name}"')
    engine = make_engine(pg_url(name))
    upgrade(engine)
    engine.dispose()
    copies = _copies[name] = Copies(PG_DSN, libpq_url, name, _RUN)
    try:
        yield name
    finally:
        del _copies[name]
        try:
            copies.close()
        finally:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A freshly migrated, empty database of each engine."""
    return fresh_db_url(request, tmp_path, request.param)


def fresh_db_url(request, tmp_path: Path, engine: str) -> str:
    """A freshly migrated, empty database of `engine` ("sqlite" or "postgresql") for the
    fixture asking (`request`): an SQLite file in `tmp_path`, or a PostgreSQL database
    dropped when that fixture ends."""
    if engine == "sqlite":
        return sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path / "strongroom.db")
    return pg_copy(request, request.getfixturevalue("pg_template"))


def per_engine_per_module(name: str, start: Callable, doc: str):
    """A module-scoped fixture named `name`, one per engine (and test worker): what
    `start(tmp_path, db_url)` (a context manager) yields over a fresh database, for the
    module's tests that change nothing a later one could see (refusals, reads), each
    checking that itself, so that one daemon serves them instead of one started per
    test (about 2-3 s each)."""
    @pytest.fixture(scope="module", params=["sqlite", "postgresql"], name=name)
    def shared(request, tmp_path_factory):
        tmp = tmp_path_factory.mktemp(name)
        with start(tmp, fresh_db_url(request, tmp, request.param)) as value:
            yield value
    shared.__doc__ = doc
    return shared


def sqlite_copy(template: Path, path: Path) -> str:
    """A copy of the migrated template with its own sync site id (as `init` would give
    it: two copies of one template must not look like one site)."""
    shutil.copy(template, path)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE sync_site SET id = ?", (str(uuid.uuid4()),))
    return f"sqlite:///{path}"


def pg_copy(request, template: str) -> str:
    """A PostgreSQL database equal to the template, with its own site id, for the test
    (or module fixture) asking: made or reset ahead, reset or dropped behind
    (tests/pgcopies.py)."""
    copies = _copies[template]
    name = copies.take()
    request.addfinalizer(lambda: copies.give_back(name))
    return pg_url(name)


def lift_audit_guards(conn) -> None:
    """Let this transaction change audit_logs the way a database administrator could:
    SQLite's append-only triggers dropped, PostgreSQL's triggers off (replica role)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_logs_append_only_update")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_logs_append_only_delete")
    else:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")


def make_settings(data_dir: Path, db_url: str, **auth_overrides) -> Settings:
    """Settings for a test data directory; writes a KEK file if there is none."""
    kek_file = data_dir / "kek.key"
    if not kek_file.exists():
        write_kek_file(kek_file, generate_kek())
    return Settings(
        data_dir=data_dir,
        database=DatabaseSettings(url=db_url),
        keys=KeySettings(kek_file=kek_file, kek_env=None, kek_credential=None),
        auth=AuthSettings(argon2=FAST_ARGON2, **auth_overrides),
    )


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    return make_settings(data_dir, db_url)


@pytest.fixture
def ctx(settings) -> Context:
    context = open_context(settings)
    yield context
    context.close()


@pytest.fixture
def engine(ctx):
    return ctx.engine


# --- the Prometheus contract: what strongroomd exports and what etc/prometheus reads ------

ROOT = Path(__file__).resolve().parents[1]


PROM = ROOT / "etc" / "prometheus"


RULES = PROM / "strongroom-alerts.yml"


CONFIG = PROM / "prometheus.yml"


RULES_TEST = PROM / "strongroom-alerts.test.yml"


# The metrics strongroomd exports (name -> type, labels): tests/daemon/test_metrics.py checks the
# daemon against this list and tests/test_prometheus_rules.py the alert rules; the rules may use
# nothing else (besides Prometheus' own `up`). No label is called `job`: Prometheus sets that to
# the scrape job's name.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "strongroom_backup_last_success_timestamp_seconds": ("gauge", ("configuration",)),
    "strongroom_backup_max_age_seconds": ("gauge", ("configuration",)),
    "strongroom_job_runs_total": ("counter", ("kind", "status")),
    "strongroom_job_last_success_timestamp_seconds": ("gauge", ("kind",)),
    "strongroom_job_duration_seconds": ("histogram", ("kind",)),
    "strongroom_audit_chain_ok": ("gauge", ()),
    "strongroom_compliance_score": ("gauge", ()),
    "strongroom_compliance_threshold": ("gauge", ()),
    "strongroom_sync_conflicts_open": ("gauge", ()),
    "strongroom_sync_rows_total": ("counter", ("peer", "direction")),
    "strongroom_sync_pass_duration_seconds": ("gauge", ("peer",)),
    "strongroom_sync_lag_seconds": ("gauge", ("peer",)),
    "strongroom_sync_pending_rows": ("gauge", ("peer",)),
    "strongroom_sync_peer_failures": ("gauge", ("peer",)),
    "strongroom_sync_quarantined": ("gauge", ()),
    "strongroom_integrity_check_status": ("gauge", ("check",)),
    "strongroom_integrity_check_last_run_timestamp_seconds": ("gauge", ("check",)),
    "strongroom_accounts_locked": ("gauge", ()),
    "strongroom_login_failures_total": ("counter", ()),
    "strongroom_missed_runs_total": ("counter", ("kind",)),
    "strongroom_up": ("gauge", ()),
    "strongroom_start_time_seconds": ("gauge", ()),
    "strongroom_build_info": ("gauge", ("version",)),
}


JOB_STATUSES = ("succeeded", "failed", "interrupted", "cancelled")


def exported_series_names() -> set[str]:
    """Every series name a scrape can contain (histograms expand to _bucket/_sum/_count)."""
    names = set()
    for name, (kind, _labels) in METRICS.items():
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
        else:
            names.add(name)
    return names


def rule_exprs() -> dict[str, str]:
    """alert name -> expr, read without a YAML library (the venv need not have one)."""
    text = RULES.read_text()
    out: dict[str, str] = {}
    for block in re.split(r"\n\s*- alert: ", text)[1:]:
        name, _, rest = block.partition("\n")
        m = re.search(r"\n\s*expr: (?:>-\n)?(.*?)\n\s*for:", "\n" + rest, re.S)
        assert m, f"no expr/for in alert {name}"
        out[name.strip()] = " ".join(m.group(1).split())
    return out
