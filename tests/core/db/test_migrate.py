"""Which schema revision a database is at, and which this release needs, without Alembic."""
import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from strongroom.core.db import migrate
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.errors import ConfigError


def test_the_head_constant_is_the_newest_migration():
    assert migrate.head_revision() == ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


def test_a_migrated_database_is_at_the_head(engine):
    assert migrate.current_revision(engine) == migrate.HEAD


def test_a_database_never_migrated_is_at_no_revision(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert migrate.current_revision(engine) is None
    finally:
        engine.dispose()


def test_a_database_naming_two_revisions_is_refused_naming_them(engine):
    with transaction(engine) as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('9999')"))
    try:
        with pytest.raises(ConfigError, match=r"2 schema revisions at once \(0021, 9999\)"):
            migrate.current_revision(engine)
    finally:
        with transaction(engine) as conn:
            conn.execute(text("DELETE FROM alembic_version WHERE version_num = '9999'"))


def test_asking_for_revisions_imports_no_alembic():
    """The daemon asks at every start; Alembic and the scripts cost it 0.2 s."""
    out = subprocess.run([sys.executable, "-c", "import sys; from strongroom.core.db import migrate; "
                          "migrate.head_revision(); print(any(m.startswith('alembic') for m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
