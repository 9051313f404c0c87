"""Faults around a pass: a process killed with -9 at seeded random moments, a session
whose client was refused, and clocks too far apart to trust timestamps."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

from sqlalchemy import select, update

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, SyncConflict, SyncQuarantine
from strongroom.core.repository.clients import create_client, update_client
from strongroom.core.repository.sessions import create_session
from strongroom.core.sync.consistency import compare
from strongroom.core.sync.merge import Policy
from tests.core.conftest import WRITER, client_ids

SEED = int(os.environ.get("STRONGROOM_KILL_SEED", "5"))

# A pass in a process of its own, in batches of one row, saying when each has committed,
# so a kill lands where the test chooses however fast the machine runs the pass.
_PASS = """
import sys
from strongroom.core import audit
from strongroom.core.crypto.kek import Kek
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine
from strongroom.core.sync.passes import PassOptions, Side, run_pass
import uuid, base64
kek = Kek(base64.b64decode(sys.argv[3]), "test")
sides = []
for url in (sys.argv[1], sys.argv[2]):
    engine = make_engine(url)
    keyring = Keyring([kek])
    audit.seal_with(engine, keyring)
    sides.append(Side(engine, keyring))
apart = sys.argv[5] == "apart"
if apart:        # every read after the first batch by a reader child, waited for
    from strongroom.core.sync import passes, reader

    class Waiting(reader.ProcessReader):
        def poll_ready(self, timeout=0):
            ready = super().poll_ready(timeout=30)
            print("reader", self.process.pid, flush=True)
            return ready
    passes.ProcessReader = Waiting
print("started", flush=True)
run_pass(sides[0], sides[1], uuid.UUID(sys.argv[4]),
         PassOptions(batch_size=1, after_batch=lambda *where: print("batch", flush=True),
                     process_after=0 if apart else None))
print("done", flush=True)
"""


def _pass_process(local, remote, apart: bool = False) -> subprocess.Popen:
    import base64
    kek = base64.b64encode(local._keks[0].key).decode()
    return subprocess.Popen([sys.executable, "-c", _PASS, local.url, remote.url, kek, str(local.peers[remote.name]),
                             "apart" if apart else "alone"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_at_random_moments_of_a_pass_loses_and_doubles_nothing(first_site, join_site):
    rng = random.Random(SEED)
    laptop = join_site("laptop")
    laptop.sync(first_site)
    ids = client_ids(first_site)
    kills = 0
    for round_ in range(4):
        for n, cid in enumerate(ids):
            site = first_site if n % 2 else laptop       # each client edited at one site only
            with transaction(site.engine) as conn:
                update_client(conn, site.keyring, WRITER, cid, {"phone": f"555-{round_}1{n:02d}"})
        kills += _kill_a_pass(rng, laptop, first_site)
    # The killed process's lease does not hold the next pass back: its holder is dead.
    laptop.sync(first_site)
    laptop.sync(first_site)
    assert kills >= 2, f"seed {SEED}: the passes ended before they could be killed"
    assert compare(laptop.engine, first_site.engine)["consistent"], f"seed {SEED}, {kills} kills"
    assert client_ids(laptop) == ids


def _kill_a_pass(rng, laptop, first_site) -> int:
    """Start a pass in its own process and kill -9 it at a seeded random point: after a
    random number of its batches have committed (a round changes 12 rows, so a pass
    has about 12), then a random fraction of a batch later, so the kill lands before,
    inside and between batches alike (a delay in wall time alone let a faster pass
    finish first). 1 when it was still running then."""
    proc = _pass_process(laptop, first_site)
    proc.stdout.readline()                       # started
    for _ in range(rng.randint(0, 10)):
        if proc.stdout.readline() != "batch\n":    # the pass ended first
            break
    time.sleep(rng.uniform(0, 0.005))
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return int(killed)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (an exited one left unreaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_9_of_a_pass_reading_in_a_child_leaves_no_reader_and_loses_nothing(first_site, join_site):
    """The job killed while its reader child (core.sync.reader) is reading: the child
    ends on its own, and the next pass finds both sites whole."""
    rng = random.Random(SEED)
    laptop = join_site("laptop")
    proc = _pass_process(laptop, first_site, apart=True)
    readers, batches = set(), 0
    target = rng.randint(3, 8)
    while batches < target:
        line = proc.stdout.readline()
        if line.startswith("reader "):
            readers.add(int(line.split()[1]))
        elif line == "batch\n":
            batches += 1
        elif not line:
            break
    assert readers, "no reader child was started before the kill"
    assert proc.poll() is None, "the pass ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in readers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(pid) for pid in readers), "a reader child outlived the job"
    laptop.sync(first_site)
    assert compare(laptop.engine, first_site.engine)["consistent"]
    assert client_ids(laptop) == client_ids(first_site)


def test_a_session_of_a_refused_client_is_held_too_and_named_for_its_client(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    with transaction(first_site.engine) as conn:
        practice = conn.execute(select(Client.__table__.c.practice_id)).scalars().first()
        cid = create_client(conn, first_site.keyring, WRITER, practice,
                            {"first_name": "Avery", "last_name": "Quinn", "email": "avery.quinn@example.org"})
        create_session(conn, first_site.keyring, WRITER,
                       {"client_id": cid, "starts_at": datetime(2026, 3, 3, 10, tzinfo=timezone.utc), "notes": "n"})
        conn.execute(update(Client.__table__).where(Client.__table__.c.id == cid).values(status="VIP"))
    result = laptop.sync(first_site)
    assert result["pull"]["clients"]["quarantined"] == 1
    assert result["pull"]["therapy_sessions"]["quarantined"] == 1
    with transaction(laptop.engine, read_only=True) as conn:
        reasons = dict(conn.execute(select(SyncQuarantine.__table__.c.table_name,
                                           SyncQuarantine.__table__.c.reason)).all())
    assert reasons == {"clients": "checksum_mismatch", "therapy_sessions": "unknown_client"}


def test_timestamps_from_clocks_too_far_apart_are_not_trusted(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    for site, phone in ((first_site, "555-0001"), (laptop, "555-0002")):
        with transaction(site.engine) as conn:
            update_client(conn, site.keyring, WRITER, cid, {"phone": phone})
    skewed = {"clients": Policy("timestamp_based", skew_ok=False)}
    laptop.sync(first_site, policies=skewed)
    with transaction(laptop.engine, read_only=True) as conn:
        assert conn.execute(select(SyncConflict.__table__.c.row_id)
                            .where(SyncConflict.__table__.c.status == "open")).scalars().all() == [cid]
    trusted = {"clients": Policy("timestamp_based")}
    other = client_ids(first_site)[1]
    for site, phone in ((laptop, "555-0003"), (first_site, "555-0004")):     # the central edit is later
        with transaction(site.engine) as conn:
            update_client(conn, site.keyring, WRITER, other, {"phone": phone})
    laptop.sync(first_site, policies=trusted)
    laptop.sync(first_site, policies=trusted)
    with transaction(laptop.engine) as conn:
        from strongroom.core.repository.clients import get_client
        assert get_client(conn, laptop.keyring, WRITER, other)["phone"] == "555-0004"


def test_a_batch_that_fails_before_it_commits_leaves_nothing_half_applied(first_site, join_site, monkeypatch):
    """The connection to the receiving side drops while a batch is being written: that
    batch's transaction rolls back whole, the watermark stays, the next pass resumes."""
    from strongroom.core.sync import passes
    laptop = join_site("laptop")
    real_flush = passes.RowWriter.flush
    calls = {"n": 0}

    def dropping(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionResetError("connection to the peer dropped")
        return real_flush(self)
    monkeypatch.setattr(passes.RowWriter, "flush", dropping)
    try:
        laptop.sync(first_site, batch_size=4)
    except ConnectionResetError:
        pass
    got = client_ids(laptop)
    assert len(got) % 4 == 0 and 0 < len(got) < 12          # whole batches only
    monkeypatch.setattr(passes.RowWriter, "flush", real_flush)
    laptop.sync(first_site, batch_size=4)
    assert compare(laptop.engine, first_site.engine)["consistent"]
