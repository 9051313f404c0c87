#!/usr/bin/python3
"""Run strongroom's native libraries under the seccomp part of strongroomd.service's sandbox.

Without a systemd manager (containers, CI) the unit cannot be started, but the two settings
that can break a CPython service in non-obvious ways can be reproduced with libseccomp:

* the unit's SystemCallFilter= lines, applied in order as systemd does (the first one is an
  allow list; "~" lines remove from it, plain lines add back; anything not allowed kills the
  process with SIGSYS, systemd's default action),
* RestrictRealtime=yes (sched_setscheduler to SCHED_FIFO/RR/DEADLINE fails with EPERM), and
* MemoryDenyWriteExecute=yes (mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect adding
  PROT_EXEC and shmat with SHM_EXEC fail with EPERM, the rules systemd installs).

The filter is installed in this process, then the venv's python is exec'd with a workload that
imports and exercises argon2-cffi, cryptography, pyzmq (ipc + tcp), zstandard (threaded),
psycopg (binary; connects when PostgreSQL answers), SQLAlchemy, APScheduler, prometheus-client,
ssl, and a ctypes callback (libffi closure).

Needs the libseccomp Python binding for the interpreter running this script (Debian:
python3-seccomp) and systemd-analyze (to expand the syscall groups for this systemd version).

    /usr/bin/python3 systemd/sandbox-check.py [/path/to/venv/bin/python]

Exit status 0 and "sandbox-check: ok" mean every step ran inside the filter.
"""

from __future__ import annotations

import errno
import mmap
import os
import subprocess
import sys

import seccomp  # python3-seccomp

UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "strongroomd.service")

WORKLOAD = r"""
import ctypes, os, socket, ssl, tempfile, threading, time, mmap

# MemoryDenyWriteExecute really is on: a W+X mapping must fail.
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    pass
else:
    raise SystemExit("filter not active: W+X mmap succeeded")

import argon2
ph = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=4)
assert ph.verify(ph.hash("correct horse battery"), "correct horse battery")
from argon2.low_level import hash_secret_raw, Type
hash_secret_raw(b"s" * 16, b"salt" * 4, 1, 8192, 2, 32, Type.ID)

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.fernet import Fernet
k = AESGCM.generate_key(bit_length=256)
assert AESGCM(k).decrypt(b"n" * 12, AESGCM(k).encrypt(b"n" * 12, b"phi", b"ad"), b"ad") == b"phi"
ChaCha20Poly1305(ChaCha20Poly1305.generate_key()).encrypt(b"n" * 12, b"x", None)
sk = Ed25519PrivateKey.generate(); sk.public_key().verify(sk.sign(b"m"), b"m")
sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                 serialization.BestAvailableEncryption(b"pw"))
X25519PrivateKey.generate().exchange(X25519PrivateKey.generate().public_key())
HKDF(hashes.SHA256(), 32, None, b"info").derive(b"k" * 32)
Scrypt(b"salt", 32, 2**10, 8, 1).derive(b"pw")
Fernet(Fernet.generate_key()).encrypt(b"x")

import zstandard
data = os.urandom(1 << 16) * 8
c = zstandard.ZstdCompressor(level=3, threads=2).compress(data)
assert zstandard.ZstdDecompressor().decompress(c) == data

import zmq
ctx = zmq.Context()
d = tempfile.mkdtemp()
for addr in ("ipc://" + os.path.join(d, "ctl.sock"), "tcp://127.0.0.1:*"):
    rep = ctx.socket(zmq.REP); rep.bind(addr)
    req = ctx.socket(zmq.REQ); req.connect(rep.getsockopt(zmq.LAST_ENDPOINT).decode())
    req.send(b"ping"); assert rep.recv() == b"ping"; rep.send(b"pong"); assert req.recv() == b"pong"
    req.close(0); rep.close(0)
ctx.term()

import psycopg
from psycopg.pq import __impl__ as pq_impl
assert pq_impl == "binary", pq_impl
dsn = os.environ.get("STRONGROOM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
try:
    conn = psycopg.connect(dsn, connect_timeout=3)
except psycopg.OperationalError as exc:
    print("sandbox-check: PostgreSQL not reachable, connect step skipped:", str(exc).splitlines()[0])
else:
    with conn:
        assert conn.execute("select 1").fetchone() == (1,)

import sqlalchemy
eng = sqlalchemy.create_engine("sqlite:///" + os.path.join(d, "t.db"))
with eng.begin() as cx:
    cx.exec_driver_sql("create table t (x)"); cx.exec_driver_sql("insert into t values (1)")

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
fired = threading.Event()
s = BackgroundScheduler(); s.add_job(fired.set, "date"); s.start()
CronTrigger.from_crontab("30 2 * * *")
assert fired.wait(10); time.sleep(0.5); s.shutdown()

import prometheus_client, urllib.request
srv, th = prometheus_client.start_http_server(0, addr="127.0.0.1")
port = srv.server_address[1]
assert b"python_info" in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
srv.shutdown()

ssl.create_default_context()

# sd_notify-style datagram on an AF_UNIX socket.
a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a.bind(os.path.join(d, "notify"))
b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); b.sendto(b"READY=1", os.path.join(d, "notify"))
assert a.recv(64) == b"READY=1"

# ctypes callback: a libffi closure (needs no W+X pages with static trampolines).
libc = ctypes.CDLL(None)
CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
arr = (ctypes.c_int * 5)(5, 1, 4, 2, 3)
libc.qsort(arr, 5, ctypes.sizeof(ctypes.c_int), CMP(lambda x, y: x[0] - y[0]))
assert list(arr) == [1, 2, 3, 4, 5]

os.cpu_count(); time.tzname
print("sandbox-check: ok")
"""


def expand(group: str, seen: set[str] | None = None) -> set[str]:
    """Syscall names in a systemd syscall group, nested groups expanded."""
    seen = seen if seen is not None else set()
    if group in seen:
        return set()
    seen.add(group)
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group], check=True, capture_output=True, text=True
    ).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            names |= expand(line, seen)
        else:
            names.add(line)
    return names


def main() -> int:
    python = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", ".venv", "bin", "python"
    )
    allowed: set[str] = set()
    with open(UNIT) as fh:
        filters = [ln.split("=", 1)[1].split() for ln in fh if ln.startswith("SystemCallFilter=")]
    for n, words in enumerate(filters):
        deny = bool(words) and words[0].startswith("~")
        if n == 0 and deny:
            raise SystemExit("sandbox-check: expected the first SystemCallFilter= to be an allow list")
        names: set[str] = set()
        for w in words:
            w = w.lstrip("~")
            names |= expand(w) if w.startswith("@") else {w}
        allowed = allowed - names if deny else allowed | names

    if os.geteuid() == 0:
        # strongroomd runs as the unprivileged user "strongroom"; as root some libraries take
        # other paths (SQLite fchown()s its journal to the database owner, an @privileged call).
        # Re-run in a user namespace where we are uid 1000 (like PrivateUsers=yes); files keep
        # their owner outside, so an interpreter under a 0700 /root stays readable.
        os.execvp("unshare", ["unshare", "--user", "--map-user=1000", "--map-group=1000",
                              sys.executable, os.path.abspath(__file__), python])

    f = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
    # MemoryDenyWriteExecute=yes: the EPERM rules must take precedence over the allow rules
    # for the same syscalls, so those syscalls get conditional rules only.
    wx = mmap.PROT_WRITE | mmap.PROT_EXEC
    mdwe = {"mmap", "mprotect", "pkey_mprotect", "shmat"}
    eperm = seccomp.ERRNO(errno.EPERM)
    for name in ("mmap",):
        f.add_rule(eperm, name, seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
        f.add_rule(seccomp.ALLOW, name, seccomp.Arg(2, seccomp.MASKED_EQ, wx, 0))
        f.add_rule(seccomp.ALLOW, name, seccomp.Arg(2, seccomp.MASKED_EQ, wx, mmap.PROT_WRITE))
        f.add_rule(seccomp.ALLOW, name, seccomp.Arg(2, seccomp.MASKED_EQ, wx, mmap.PROT_EXEC))
    for name in ("mprotect", "pkey_mprotect"):
        f.add_rule(eperm, name, seccomp.Arg(2, seccomp.MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC))
        f.add_rule(seccomp.ALLOW, name, seccomp.Arg(2, seccomp.MASKED_EQ, mmap.PROT_EXEC, 0))
    shm_exec = 0o100000
    f.add_rule(eperm, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, shm_exec, shm_exec))
    f.add_rule(seccomp.ALLOW, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, shm_exec, 0))
    # RestrictRealtime=yes: only SCHED_OTHER/BATCH/IDLE (SCHED_RESET_ON_FORK may be or'ed in).
    special = set(mdwe)
    if "sched_setscheduler" in allowed:
        special.add("sched_setscheduler")
        mask = ~0x40000000 & 0xFFFFFFFF
        for pol in (0, 3, 5):
            f.add_rule(seccomp.ALLOW, "sched_setscheduler", seccomp.Arg(1, seccomp.MASKED_EQ, mask, pol))
        for pol in (1, 2, 6):
            f.add_rule(eperm, "sched_setscheduler", seccomp.Arg(1, seccomp.MASKED_EQ, mask, pol))
    skipped = []
    for name in sorted(allowed - special):
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError, OSError):
            skipped.append(name)  # not a syscall on this architecture
    f.load()
    os.execv(python, [python, "-c", WORKLOAD])


if __name__ == "__main__":
    sys.exit(main())
