"""The sending side's reader of a long pass, in a process of its own.

Why a process: reading a batch (fetching rows, building them, stamping local writes,
proving their checksums) and applying the one before it are both mostly Python, and
in one process they take turns on the interpreter lock; a thread reading ahead
overlapped only the time either side spent waiting on its database. A second process
reads on the second core, so a long pass costs about the larger of the two halves
instead of their sum (#16).

What it changes: nothing about what is read or committed. The child runs the same
`passes._read_batch` on its own connection to the same sending database, one batch at
a time and only when asked, exactly as the thread did (at most one batch ahead); the
rows come back pickled. Stamps it commits are the ones any read would commit.

Failure: a child that cannot start, fails a read or dies is dropped and the batch is
read again in the parent, where a real error is raised as it always was. The parent
takes each frame off the pipe in its reading thread, which mostly waits, while its
main thread applies the batch before. A parent that dies (kill -9) leaves the child at
end of file on its input, and it exits; a read it was making is a transaction its
database rolls back.

Small passes never start one: the start-up (an interpreter and its imports, about half
a second) only pays when many batches follow (`PassOptions.process_after`).

The frames are pickles between the parent and a child it started itself from this
interpreter; nothing else writes to those pipes. A batch crosses as
column names once and a tuple per row and per metadata record, with UUIDs rebuilt from
their integer directly: pickled as they are (dicts, dataclasses, UUIDs through their
Python-level __getstate__ and __setstate__) a 2,000-row batch cost about 50 ms to dump
and load, a third of what reading it costs; so it costs about 28 ms. Each version's
dots and field hashes cross as the JSON text stored for them, decoded in the parent
only if something reads them (core.sync.stamp.Meta): as dicts they were about forty
objects a row to pickle and rebuild, and encoding, dumping, loading and decoding a
batch of 2,000 clients took 185 ms where it now takes 93 (sessions: 177 and 145 ms;
measured on a machine about twice as slow as the one above).
"""
from __future__ import annotations

import copyreg
import gc
import os
import pickle
import select
import subprocess
import sys
import uuid
from collections.abc import Mapping
from typing import Any, BinaryIO

from sqlalchemy import Engine

from strongroom.core.db.rawrows import uuid_of_int
from strongroom.core.sync.stamp import Meta
from strongroom.core.sync.tables import by_name

READY = "ready"

def _reduce_uuid(value: uuid.UUID) -> tuple:
    return uuid_of_int, (value.int,)


_DISPATCH = copyreg.dispatch_table.copy()
_DISPATCH[uuid.UUID] = _reduce_uuid


def encode_batch(value: tuple, fields: Mapping) -> tuple:
    """A `passes._read_batch` result in the form that crosses the pipe cheaply: dots and
    hashes as JSON text (one string each, where their dicts were some forty objects a
    row to pickle and rebuild), decoded on the other side only if read. `fields`: the
    table's (SyncTable.fields). The text is the one the read stored or read (Meta.encode)."""
    out, high, count, last, with_base, mismatched = value
    names = list(out[0][0]) if out else []
    rows = [tuple(map(row.__getitem__, names)) for row, _ in out]
    metas = [(m.origin, m.hlc, m.vv, *m.encode(fields), m.source, m.pending, m.version, m.stored) for _, m in out]
    return names, rows, metas, high, count, last, with_base, mismatched


def decode_batch(value: tuple, fields: Mapping) -> tuple:
    """`encode_batch` undone: the result as `passes._read_batch` returned it. `fields`:
    the table's (SyncTable.fields), which the dots are unpacked by."""
    names, rows, metas, high, count, last, with_base, mismatched = value
    out = [(dict(zip(names, row)), Meta(origin, hlc, vv, None, None, source, pending, version, stored,
                                        raw=(dots, hashes, fields)))
           for row, (origin, hlc, vv, dots, hashes, source, pending, version, stored) in zip(rows, metas)]
    return out, high, count, last, with_base, mismatched


class ReaderFailed(Exception):
    """The child could not read (it names no rows or values): read in the parent."""


def _write(stream: BinaryIO, value: Any) -> None:
    """One frame, pickled straight into the pipe (protocol 5 cuts it into frames of its
    own, 64 KiB each): a batch is never held whole as bytes on either side."""
    pickler = pickle.Pickler(stream, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(value)
    stream.flush()


def _read(stream: BinaryIO) -> Any:
    """One frame; EOFError when the other side is gone (a cut frame included)."""
    try:
        return pickle.load(stream)
    except pickle.UnpicklingError:
        raise EOFError from None


def can_read_apart(engine: Engine) -> bool:
    """Whether another process can open the database `engine` reaches: not an SQLite
    database in memory (each connection has its own)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return bool(url.database) and url.database != ":memory:" and url.query.get("mode") != "memory"
    return True


class ProcessReader:
    """A child process reading batches of one table from one database, one at a time."""

    def __init__(self, engine: Engine, table_name: str, limit: int, to_site: str) -> None:
        if not sys.executable:
            raise OSError("no interpreter to start a reader with")
        self.table_name = table_name
        self.process = subprocess.Popen([sys.executable, "-m", "strongroom.core.sync.reader"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.ready = False
        self.busy = False
        self.broken = False
        # The URL goes over the pipe, never on the command line (it may hold a password).
        try:
            _write(self.process.stdin, {"url": engine.url.render_as_string(hide_password=False),
                                        "table": table_name, "limit": limit, "to_site": to_site})
        except OSError:
            self.process.kill()
            self.process.wait()
            raise

    def poll_ready(self, timeout: float = 0) -> bool:
        """Whether the child has started, waiting at most `timeout` seconds for it (a pass
        goes on reading in its own thread meanwhile). ReaderFailed if it could not start."""
        if not self.ready and select.select([self.process.stdout], [], [], timeout)[0]:
            try:
                self.ready = _read(self.process.stdout) == READY
            except (EOFError, OSError):       # _read turns a cut frame into EOFError
                raise ReaderFailed("the reader process did not start") from None
            if not self.ready:
                raise ReaderFailed("the reader process did not start")
        return self.ready

    def submit(self, cursor: tuple, prove: bool = True) -> None:
        """Ask for the batch past `cursor`, its rows' checksums proven by the child when
        `prove` (else the batch says None and the job proves them); a child that is gone
        is found by `result`."""
        try:
            _write(self.process.stdin, (cursor, prove))
        except (OSError, ValueError):          # its pipe broken, or closed
            self.broken = True
        self.busy = True

    def result(self) -> tuple:
        """The batch asked for last; ReaderFailed if the child could not read it. Called
        inside the pass's pause of the cyclic collector (passes.move_table): a batch is
        many small objects."""
        self.busy = False
        if self.broken:
            raise ReaderFailed("the reader process ended")
        try:
            status, value = _read(self.process.stdout)
        except (EOFError, OSError):       # _read turns a cut frame into EOFError
            raise ReaderFailed("the reader process ended") from None
        if status != "ok":
            raise ReaderFailed(f"the reader process failed ({value})")
        return decode_batch(value, by_name(self.table_name).fields)

    def close(self) -> None:
        """Stop the child. A read in flight is abandoned: its transaction rolls back, or
        it committed stamps any later read would commit too. One still starting has
        nothing to finish and is not waited for."""
        if not self.ready:
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=5 if not self.busy else 0.5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    from strongroom.core.db.engine import make_engine
    from strongroom.core.sync.passes import COLLECT_EVERY, Side, _read_batch
    from strongroom.core.sync.tables import synced
    gc.freeze()         # the imports' objects: never garbage, and not to be scanned again
    setup = _read(stdin)
    engine = make_engine(setup["url"])
    spec = next(s for s in synced() if s.name == setup["table"])
    side = Side(engine, keyring=None, site="")     # a read needs the database only
    _write(stdout, READY)
    served = 0
    gc.disable()        # as in the parent (passes.move_table): collected every few batches
    try:
        while True:
            try:
                cursor, prove = _read(stdin)
            except EOFError:
                return
            served += 1
            if not served % COLLECT_EVERY:
                gc.collect(1)
            try:
                value = encode_batch(_read_batch(side, spec, cursor, setup["limit"], to_site=setup["to_site"],
                                                 prove=prove), spec.fields)
            except Exception as exc:       # the parent reads again itself and raises it
                _write(stdout, ("error", type(exc).__name__))
                return
            _write(stdout, ("ok", value))  # a write that fails ends the child: no frame after half a frame
            del value                      # not alive beside the next batch
    finally:
        engine.dispose()


def main() -> None:
    """The child's entry point (`python -m strongroom.core.sync.reader`)."""
    # Frames go to the original stdout; anything printed goes to stderr instead of
    # into a frame.
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        _serve(sys.stdin.buffer, frames)
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    # Run from the module under its own name, not as __main__: the frames' picklers
    # name the functions they rebuild values with by their modules' names.
    from strongroom.core.sync.reader import main as _main
    _main()
