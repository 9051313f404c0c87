"""A long pass reads the sending side in a child process: the same rows land, and a
child that fails or dies costs nothing but the time to read again in the job."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, select, update

from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import Client, TherapySession
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.sync import passes
from strongroom.core.sync.reader import ProcessReader, ReaderFailed, can_read_apart
from tests.core.conftest import client_ids


def _checksums(site, table):
    with transaction(site.engine, read_only=True) as conn:
        return dict(conn.execute(select(table.c.id, table.c.data_checksum)).all())


def _same(a, b) -> None:
    assert client_ids(a) == client_ids(b)
    for table in (Client.__table__, TherapySession.__table__):
        assert _checksums(a, table) == _checksums(b, table)


def _edit_clients(site, count: int) -> None:
    """A local write of `count` clients, as the application makes one."""
    table = Client.__table__
    with transaction(site.engine) as conn:
        version = next_change_version(conn)
        for row in conn.execute(select(table).order_by(table.c.id).limit(count)).mappings().all():
            new = dict(row, status="VIP" if row["status"] != "VIP" else "ACTIVE", sync_version=version)
            conn.execute(update(table).where(table.c.id == row["id"]).values(
                status=new["status"], sync_version=version, data_checksum=row_checksum(new)))


class Counted(ProcessReader):
    """A reader that waits for its child to start (a test pass is over before half a
    second passes) and counts the batches the child read."""

    made: list["Counted"] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read = 0
        Counted.made.append(self)

    def poll_ready(self, timeout: float = 0) -> bool:
        return super().poll_ready(timeout=30)

    def result(self) -> tuple:
        value = super().result()
        self.read += 1
        return value


@pytest.fixture
def counted(monkeypatch):
    Counted.made = []
    monkeypatch.setattr(passes, "ProcessReader", Counted)
    return Counted.made


def test_rows_read_by_a_child_process_land_as_the_job_reads_them_both_ways(first_site, join_site, counted):
    laptop = join_site("laptop")
    laptop.sync(first_site, batch_size=2, process_after=0)            # pull: the central site's rows
    _same(laptop, first_site)
    pulled = sum(r.read for r in counted)
    assert pulled > 0
    _edit_clients(laptop, 7)
    result = laptop.sync(first_site, batch_size=2, process_after=0)   # push: the laptop's edits
    assert result["push"]["clients"]["applied"] == 7
    assert sum(r.read for r in counted) > pulled
    _same(laptop, first_site)
    assert all(r.process.poll() is not None for r in counted)        # every child has ended


def _meta_texts(site, table_name: str) -> dict:
    from strongroom.core.db.models import SyncRow
    meta = SyncRow.__table__
    with transaction(site.engine, read_only=True) as conn:
        rows = conn.execute(select(meta.c.row_id, meta.c.vv, meta.c.dots, meta.c.hashes)
                            .where(meta.c.table_name == table_name)).all()
    return {r.row_id: (r.vv, r.dots, r.hashes) for r in rows}


def test_versions_that_move_on_cross_and_land_undecoded(first_site, join_site, counted, monkeypatch):
    """New rows and fast forwards (the usual pass) reach the receiving side's metadata
    as the text the sending side stored: applying them never decodes their dots and
    hashes (only stamping the sender's own edits reads its old hashes), and they hold
    there what they hold here."""
    from strongroom.core.sync.stamp import Meta
    applying, decoded = [], []
    original_decode, original_apply = Meta._decode, passes.apply_batch

    def counting(self) -> None:
        if applying:
            decoded.append(self.origin)
        original_decode(self)

    def apply(*args, **kwargs):
        applying.append(True)
        try:
            return original_apply(*args, **kwargs)
        finally:
            applying.pop()

    laptop = join_site("laptop")
    monkeypatch.setattr(Meta, "_decode", counting)
    monkeypatch.setattr(passes, "apply_batch", apply)
    laptop.sync(first_site, batch_size=2, process_after=0)           # pull: every row new there
    _edit_clients(first_site, 5)
    result = laptop.sync(first_site, batch_size=2, process_after=0)  # pull: five fast forwards
    assert result["pull"]["clients"]["applied"] == 5
    assert sum(r.read for r in counted) > 0
    assert decoded == []
    for table in ("clients", "therapy_sessions"):
        assert _meta_texts(laptop, table) == _meta_texts(first_site, table)


def test_a_child_that_dies_mid_pass_is_replaced_by_reading_in_the_job(first_site, join_site, monkeypatch, caplog):
    class Dying(Counted):
        def submit(self, cursor: tuple, prove: bool = True) -> None:
            super().submit(cursor, prove)
            self.process.kill()

    Counted.made = []
    monkeypatch.setattr(passes, "ProcessReader", Dying)
    laptop = join_site("laptop")
    with caplog.at_level(logging.WARNING, logger="strongroom.core.sync.passes"):
        result = laptop.sync(first_site, batch_size=2, process_after=0)
    assert result["pull"]["clients"]["applied"] == 12
    _same(laptop, first_site)
    assert Counted.made and all(r.read == 0 for r in Counted.made)
    assert "reading clients in the job's process" in caplog.text


def test_a_child_whose_read_fails_sends_no_rows_and_the_job_raises_the_real_error(first_site, join_site,
                                                                                  monkeypatch, counted):
    laptop = join_site("laptop")
    original = passes._read_batch

    class Refusing(Counted):
        failed = False

        def submit(self, cursor: tuple, prove: bool = True) -> None:
            super().submit(("not", "a cursor"), prove)    # the child's read fails on it

        def result(self) -> tuple:
            try:
                return super().result()
            except ReaderFailed:
                Refusing.failed = True
                raise

    def failing(*args, **kwargs):           # the job's own read fails too, once the child's has
        if Refusing.failed:
            raise RuntimeError("disk gone")
        return original(*args, **kwargs)

    monkeypatch.setattr(passes, "ProcessReader", Refusing)
    monkeypatch.setattr(passes, "_read_batch", failing)
    with pytest.raises(RuntimeError, match="disk gone"):
        laptop.sync(first_site, batch_size=2, process_after=0)
    assert Refusing.failed
    assert all(r.process.poll() is not None for r in Counted.made)


def test_a_short_pass_starts_no_child(first_site, join_site, counted):
    laptop = join_site("laptop")
    laptop.sync(first_site, batch_size=2)        # default: a child only after 4,000 rows
    assert counted == []
    _same(laptop, first_site)


def test_a_child_reader_ends_when_its_parent_goes_away(first_site):
    reader = ProcessReader(first_site.engine, "clients", 2, to_site="elsewhere")
    assert reader.poll_ready(timeout=30)
    reader.process.stdin.close()                # what a parent killed with -9 leaves it
    assert reader.process.wait(timeout=30) == 0
    reader.close()


def test_a_reader_that_cannot_start_says_so(first_site, monkeypatch):
    reader = ProcessReader(first_site.engine, "no_such_table", 2, to_site="elsewhere")
    with pytest.raises(ReaderFailed, match="did not start"):
        reader.poll_ready(timeout=30)
    reader.close()


def test_a_database_in_memory_is_never_read_apart(tmp_path):
    assert not can_read_apart(create_engine("sqlite://"))
    assert not can_read_apart(create_engine("sqlite:///:memory:"))
    assert not can_read_apart(create_engine("sqlite:///file:site?mode=memory&uri=true"))
    assert can_read_apart(make_engine(f"sqlite:///{tmp_path / 'site.db'}"))
    assert can_read_apart(make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/x"))


def test_a_batch_crosses_the_pipe_unchanged(first_site):
    """What the child sends is what the job would have read itself: the same values, of
    the same types (UUIDs that behave as UUIDs, the UTC zone itself, enum members)."""
    import io
    import pickle
    from datetime import timezone

    from strongroom.core.sync.reader import _read, _write, decode_batch, encode_batch
    from strongroom.core.sync.tables import synced
    spec = next(s for s in synced() if s.name == "therapy_sessions")
    side = passes.Side(first_site.engine, first_site.keyring)
    read = passes._read_batch(side, spec, (0, None), 50, to_site="elsewhere")
    assert read[0]
    stream = io.BytesIO()
    _write(stream, encode_batch(read, spec.fields))
    stream.seek(0)
    back = decode_batch(_read(stream), spec.fields)
    assert back == read
    for (row, meta), (row_back, meta_back) in zip(read[0], back[0]):
        assert list(row_back) == list(row)
        assert [type(v) for v in row_back.values()] == [type(v) for v in row.values()]
        assert meta_back.stored == meta.stored
        assert row_back["id"].hex == row["id"].hex and hash(row_back["id"]) == hash(row["id"])
        assert pickle.loads(pickle.dumps(row_back["id"])) == row["id"]
        assert row_back["created_at"].tzinfo is timezone.utc
        assert row_back["status"] is row["status"]


def test_a_child_gone_before_it_is_asked_is_replaced_by_reading_in_the_job(first_site, join_site, monkeypatch):
    class Gone(Counted):
        def submit(self, cursor: tuple, prove: bool = True) -> None:
            self.process.kill()
            self.process.wait()
            super().submit(cursor, prove)       # into a pipe nobody reads

    Counted.made = []
    monkeypatch.setattr(passes, "ProcessReader", Gone)
    laptop = join_site("laptop")
    result = laptop.sync(first_site, batch_size=2, process_after=0)
    assert result["pull"]["clients"]["applied"] == 12
    _same(laptop, first_site)
    assert Counted.made and all(r.broken for r in Counted.made)


def _pull_seven_edits_one_tampered(first_site, join_site, counted) -> dict:
    """Seven clients edited at the central site, one of them changed after its checksum
    was made, pulled by a joined laptop through a reader child in batches of two: each
    edit is applied but the tampered one, which is held for its checksum."""
    laptop = join_site("laptop")
    laptop.sync(first_site)
    table = Client.__table__
    tampered = client_ids(first_site)[3]
    _edit_clients(first_site, 7)
    with transaction(first_site.engine) as conn:     # changed after its checksum was made
        conn.execute(update(table).where(table.c.id == tampered).values(status="INACTIVE"))
    result = laptop.sync(first_site, batch_size=2, process_after=0)
    assert sum(r.read for r in counted) > 0
    assert (result["pull"]["clients"]["quarantined"], result["pull"]["clients"]["applied"]) == (1, 6)
    from strongroom.core.db.models import SyncQuarantine
    with transaction(laptop.engine, read_only=True) as conn:
        held = conn.execute(select(SyncQuarantine.__table__.c.row_id, SyncQuarantine.__table__.c.reason)).all()
    assert held == [(str(tampered), "checksum_mismatch")]
    return result


def test_a_row_read_by_the_child_whose_checksum_does_not_match_is_quarantined(first_site, join_site, counted):
    """The child proves each row's checksum as it reads (off the applying thread); a
    row that fails is held as the job's own check would hold it, and the rest apply."""
    _pull_seven_edits_one_tampered(first_site, join_site, counted)


def test_a_child_asked_not_to_prove_checksums_leaves_them_to_the_job(first_site, join_site, monkeypatch, counted):
    """When the applying thread waits for the child, the child is the slower side and is
    asked to skip the checksums; the job proves them itself, and a bad row is held all
    the same."""
    class Unproving(Counted):
        def submit(self, cursor: tuple, prove: bool = True) -> None:
            super().submit(cursor, False)

    monkeypatch.setattr(passes, "ProcessReader", Unproving)
    _pull_seven_edits_one_tampered(first_site, join_site, counted)


def test_a_batch_read_without_proving_names_no_mismatches_to_trust(first_site):
    from strongroom.core.sync.tables import synced
    spec = next(s for s in synced() if s.name == "clients")
    side = passes.Side(first_site.engine, first_site.keyring)
    assert passes._read_batch(side, spec, (0, None), 5, to_site="elsewhere", prove=False)[5] is None
    assert passes._read_batch(side, spec, (0, None), 5, to_site="elsewhere")[5] == set()
