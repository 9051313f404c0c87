"""A restore's target is checked when the run is asked for (core.jobs.kinds.check_request),
so a mistake is refused at once and by name, not as a failed run: a dest that is not a
database URL (named `dest`, never `database.url`, never echoed), one that cannot be
opened, one that is not empty without force. An empty or not yet created target passes,
and the check creates nothing."""
from __future__ import annotations

import pytest

from strongroom.core.db.engine import transaction
from strongroom.core.errors import ConflictError, ValidationError
from strongroom.core.jobs.kinds import check_request
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.practices import create_practice

SNAPSHOT = "01a2061f-77c9-7000-a71a-77552702252a"


def ask(dest: str, force: bool = False) -> None:
    check_request("restore", {"snapshot_id": SNAPSHOT, "dest": dest, "force": force})


@pytest.mark.parametrize("dest", ["not a url at all", "mysql://someone@db/practice"])
def test_a_dest_that_is_no_database_url_is_refused_by_name_without_echoing_it(dest):
    with pytest.raises(ValidationError) as refused:
        ask(dest)
    message = str(refused.value)
    assert message.startswith("restore: dest (the target database)") and "database.url" not in message
    assert dest not in message and "someone" not in message


def test_a_database_that_cannot_be_opened_is_refused_without_its_password():
    with pytest.raises(ValidationError, match=r"restore: dest \(the target database\) cannot be opened") as refused:
        ask("postgresql://restorer:pw-not-to-echo@127.0.0.1:1/nowhere")
    assert "pw-not-to-echo" not in str(refused.value)


def test_a_sqlite_file_not_yet_made_passes_and_is_not_created(tmp_path):
    target = tmp_path / "new.db"
    ask(f"sqlite:///{target}")
    assert not target.exists()


def test_an_empty_database_passes_and_a_non_empty_one_needs_force(engine, db_url):
    ask(db_url)
    with transaction(engine) as conn:
        create_practice(conn, SYSTEM, "Already here")
    with pytest.raises(ConflictError, match="is not empty"):
        ask(db_url)
    ask(db_url, force=True)
