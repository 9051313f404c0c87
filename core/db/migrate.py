"""Schema migrations (Alembic), run by `strongroom init` and `strongroom db upgrade`.

Knowing which revision a database is at, and which one this release needs, takes
neither Alembic nor the migration scripts: every daemon start, join and restore asks,
and importing Alembic and loading the scripts cost a daemon's start about 0.2 s (a
fifth of it). Alembic is imported only to migrate.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from strongroom.core.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

# The newest migration's revision: the schema this release runs on. When you add a
# migration, set this to its revision (tests/core/db/test_migrate.py holds the two equal).
HEAD = "0021"


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The schema revision this release needs."""
    return HEAD


def revision_of(conn: Connection) -> str | None:
    """The revision the database is at (Alembic's `alembic_version` table); None when it
    was never migrated. Migrations here form one line: a database naming several
    revisions was changed by something else, and is refused rather than guessed at."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(revisions) > 1:
        raise ConfigError(f"the database names {len(revisions)} schema revisions at once "
                          f"({', '.join(sorted(revisions))}); Strongroom's migrations form a single line")
    return revisions[0] if revisions else None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return revision_of(conn)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the schema in one transaction; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(engine)
