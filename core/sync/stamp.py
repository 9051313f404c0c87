"""Stamping: turning local writes into versions sync can compare.

Every writer of a synced table already moves the row's `sync_version` (and PostgreSQL's
triggers see writes made outside the application). The stamper does the rest, lazily,
inside the transaction of the pass that is about to read or apply those rows: for each
row whose `sync_version` is not the one its metadata was stamped at, it compares the
row's field hashes with the metadata in `sync_rows`. Fields that changed get a new dot (this site,
a new HLC value), the row's version vector advances this site's entry, and its origin
becomes this site. A row whose content did not change (a version applied by sync, or a
write that changed nothing sync carries) gets no new version. So no writer has to know
about sync, and a local edit can neither be missed nor counted twice.

Version vectors map a site id to the HLC of that site's last edit of the row; a dot
`[site, hlc]` names one edit. Version A has seen edit d when `A.vv[d.site] >= d.hlc`.
"""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping

from sqlalchemy import Connection, Text, and_, cast, insert, null, or_, select, text, update

from strongroom.core.db.engine import BINARY_RESULTS
from strongroom.core.db.jsoncodec import Encoded, dumps, loads
from strongroom.core.db.models import SyncRow
from strongroom.core.db.rawrows import raw, read_kinds, typed_rows
from strongroom.core.db.pg import CHANGE_LOCK_KEY
from strongroom.core.sync.site import Clock
from strongroom.core.sync.writes import write_rows
from strongroom.core.sync.tables import SyncTable, field_hashes

_meta = SyncRow.__table__


class Meta:
    """One row's version metadata (a `sync_rows` record).

    Its dots and field hashes may be held as the JSON text they were stored as (`raw`,
    read so by `read_with_meta`), decoded only when something reads them: a version
    that simply moves on (a new row, a fast forward, the usual case of a pass) is
    written on the receiving side as the same text, never decoded, copied between
    processes as a Python object nor encoded again. Profiled at 2,000-row batches: the
    decoded dicts were most of what crossing from the reader process cost (a tenth of
    a pass's CPU) and their encoding and decoding another few percent. Once decoded
    (read, or set), the text is no longer written: a decoded dict may have been
    changed in place."""

    __slots__ = ("origin", "hlc", "vv", "_dots", "_hashes", "source", "pending", "version", "stored", "_raw")

    def __init__(self, origin: str, hlc: int, vv: dict[str, int], dots: dict[str, list] | None,
                 hashes: dict[str, str] | None, source: str | None = None, pending: dict[str, int] | None = None,
                 version: int = 0, stored: bool = False, raw: tuple[str, str, Mapping] | None = None) -> None:
        """`raw`: (dots as stored, packed; hashes; the table's fields) in place of `dots`
        and `hashes` (then None), decoded when first read."""
        self.origin, self.hlc, self.vv = origin, hlc, vv
        self._dots, self._hashes, self._raw = dots, hashes, raw
        self.source, self.pending, self.version, self.stored = source, pending, version, stored

    @property
    def dots(self) -> dict[str, list]:
        if self._dots is None:
            self._decode()
        return self._dots

    @dots.setter
    def dots(self, value: dict[str, list]) -> None:
        if self._dots is None:
            self._decode()
        self._dots = value

    @property
    def hashes(self) -> dict[str, str]:
        if self._hashes is None:
            self._decode()
        return self._hashes

    @hashes.setter
    def hashes(self, value: dict[str, str]) -> None:
        if self._hashes is None:
            self._decode()
        self._hashes = value

    def _decode(self) -> None:
        raw, self._raw = self._raw, None
        self._dots = unpack_dots(loads(raw[0]), raw[2])
        self._hashes = dict(loads(raw[1]))

    def encode(self, fields: Mapping) -> tuple[str, str]:
        """The dots (packed) and hashes as JSON text, encoded now if held decoded; from
        then on the metadata holds that text (decoded again if read): a version stamped
        by a pass's read is written there and then sent on as the same text."""
        if self._raw is None:
            self._raw = (dumps(pack_dots(self._dots)), dumps(self._hashes), fields)
            self._dots = self._hashes = None
        return self._raw[:2]

    def copy(self) -> "Meta":
        """A new version's metadata from this one: its vector copied, its dots and hashes
        copied, or their text shared while undecoded (text is never changed in place)."""
        if self._raw is not None:
            return Meta(self.origin, self.hlc, dict(self.vv), None, None, raw=self._raw)
        return Meta(self.origin, self.hlc, dict(self.vv), dict(self._dots), dict(self._hashes))

    def _key(self) -> tuple:
        return (self.origin, self.hlc, self.vv, self.dots, self.hashes, self.source, self.pending, self.version)

    def __eq__(self, other: object) -> bool:
        # As the dataclass it was compared: every field but `stored`.
        return other.__class__ is Meta and self._key() == other._key()

    __hash__ = None

    def __repr__(self) -> str:
        names = ("origin", "hlc", "vv", "dots", "hashes", "source", "pending", "version")
        return "Meta(" + ", ".join(f"{n}={v!r}" for n, v in zip(names, self._key())) + f", stored={self.stored!r})"

    def as_row(self, table_name: str, row_id: uuid.UUID, fields: Mapping | None = None) -> dict:
        """The `sync_rows` record. `fields` (the table's): the dots and hashes as JSON
        text (`Encoded`, `encode`) for the bulk writers (core.sync.writes), which write
        such text as it is; a writer that encodes JSON itself must not be given it."""
        if fields is not None:
            dots, hashes = map(Encoded, self.encode(fields))
        else:
            dots, hashes = pack_dots(self.dots), self.hashes
        return {"table_name": table_name, "row_id": row_id, "origin": self.origin, "hlc": self.hlc,
                "vv": self.vv, "dots": dots, "hashes": hashes, "source": self.source,
                "pending": self.pending, "version": self.version}


def pack_dots(dots: Mapping[str, list]) -> dict:
    """Dots as stored: the most common dot once under "*" (every field not named), the
    others by field: most fields of a row were set by one edit, its creation."""
    if not dots:
        return {}
    values = list(dots.values())
    first = values[0]
    same = values.count(first)
    if same == len(values):                  # the usual row: every field set by one edit
        return {"*": list(first)}            # (one C-level pass; counting costs 3x more)
    if 2 * same > len(values):               # an edited row: most fields still hold the first
        common = tuple(first)                # dot, which is then the most common (no count)
    else:
        counts = Counter(map(tuple, values))     # a dot is [site, hlc]
        common = max(counts, key=lambda d: (counts[d], d))
    listed = list(common)
    packed: dict = {"*": listed}
    for f, d in dots.items():
        if d != listed and tuple(d) != common:
            packed[f] = d
    return packed


def unpack_dots(packed: Mapping, fields) -> dict[str, list]:
    """The dot of every field in `fields` (the table's, core.sync.tables)."""
    default = packed.get("*")
    if default is None:
        return dict(packed)
    if len(packed) == 1:        # the usual row, every field set by one edit: in one C call
        return dict.fromkeys(fields, default)
    return {f: packed.get(f, default) for f in fields}


def meta_of(record: Mapping, fields, prefix: str = "") -> Meta:
    return Meta(record[prefix + "origin"], record[prefix + "hlc"], dict(record[prefix + "vv"]),
                unpack_dots(record[prefix + "dots"], fields), dict(record[prefix + "hashes"]), record[prefix + "source"],
                dict(record[prefix + "pending"]) if record[prefix + "pending"] else None, record[prefix + "version"],
                stored=True)


META_COLUMNS = ("origin", "hlc", "vv", "dots", "hashes", "source", "pending", "version")


def past(table, version: int, after_id: uuid.UUID | None):
    """Rows after the cursor (version, id) in (sync_version, id) order, written so the
    (sync_version, id) index gives its range start (a plain OR would not)."""
    if after_id is None:
        return table.c.sync_version > version
    return and_(table.c.sync_version >= version,
                or_(table.c.sync_version > version, table.c.id > after_id))


def read_with_meta(conn: Connection, spec: SyncTable, *where, limit: int | None = None,
                   for_update: bool = False, columns: list[str] | None = None, history: bool = True,
                   ) -> tuple[list[dict], dict[uuid.UUID, Meta]]:
    """Rows of `spec` (in (sync_version, id) order) with their metadata, in one query:
    the table left-joined with `sync_rows` (a row not stamped yet has none). `columns`:
    only these of each row. `history`: False leaves out the metadata's dots and field
    hashes (read and decoded, they are most of its cost), for a caller that only orders
    versions by their vectors: the metadata then has empty ones and must not be stored."""
    table = spec.table
    names = spec.column_names if columns is None else columns
    joined = table.outerjoin(_meta, and_(_meta.c.table_name == spec.name, _meta.c.row_id == table.c.id))
    # Dots and hashes as their text (Meta decodes them when read); on PostgreSQL the
    # text of a jsonb value, which is what its driver would have parsed.
    meta_columns = [_meta.c[c] if c not in ("dots", "hashes") else cast(_meta.c[c], Text) if history else null()
                    for c in META_COLUMNS]
    columns = [table.c[n] for n in names]
    # On SQLite the values are made here from what it stores (core.db.rawrows: the same
    # values for less; see there). PostgreSQL's driver returns its values typed, and
    # little is left for SQLAlchemy to do to them.
    convert = conn.dialect.name == "sqlite"
    shown = raw if convert else (lambda column: column)
    query = (select(*map(shown, columns), *[shown(c).label(f"m_{n}") for c, n in zip(meta_columns, META_COLUMNS)])
             .select_from(joined).where(*where).order_by(table.c.sync_version, table.c.id))
    if limit is not None:
        query = query.limit(limit)
    if for_update:
        query = query.with_for_update(of=table)
    if not convert:
        query = query.execution_options(**{BINARY_RESULTS: True})      # ciphertext as bytes, not hex
    rows, metas = [], {}
    width, fields = len(names), spec.fields
    # All at once: iterating a result fetches row by row (psycopg's fetchone costs about
    # as much per row as everything else done here); a batch is bounded by `limit`.
    # Plain tuples, not mappings: a lookup by name per column and row cost more than
    # building the row dict from them (profiled: a tenth of reading a batch).
    records = conn.execute(query).all()
    if convert:
        records = typed_rows(records, read_kinds(columns + meta_columns, conn.dialect))
    for record in records:
        row = dict(zip(names, record))
        rows.append(row)
        if record[width] is not None:
            origin, hlc, vv, dots, hashes, source, pending, version = record[width:]
            metas[row["id"]] = Meta(origin, hlc, dict(vv), None if history else {}, None if history else {},
                                    source, dict(pending) if pending else None, version, stored=True,
                                    raw=(dots, hashes, fields) if history else None)
    return rows, metas


def seen(vv: Mapping[str, int], dot: list | tuple) -> bool:
    """Whether a version with vector `vv` has seen the edit `dot`."""
    return vv.get(dot[0], 0) >= dot[1]


def merged(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {site: max(a.get(site, 0), b.get(site, 0)) for site in set(a) | set(b)}


def compare(a: Mapping[str, int], b: Mapping[str, int]) -> str:
    """'equal', 'before' (a is dominated by b), 'after' or 'concurrent'.

    Asked of every row a pass applies, several times (about four calls a row): written
    as plain loops over the entries, with equal vectors (one comparison in C) first,
    where two generator expressions cost a frame and a call per site."""
    if a == b:
        return "equal"
    get_a, get_b = a.get, b.get
    less = more = False
    for site, value in b.items():
        if get_a(site, 0) < value:
            less = True
            break
    for site, value in a.items():
        if value > get_b(site, 0):
            more = True
            break
    if less and more:
        return "concurrent"
    if less:
        return "before"
    if more:
        return "after"
    return "equal"


def lock_changes(conn: Connection) -> None:
    """Wait for every writer holding a change version to commit (PostgreSQL): rows with
    lower versions cannot then appear after a pass has read past them."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHANGE_LOCK_KEY})


def save_meta(conn: Connection, table_name: str, row_id: uuid.UUID, meta: Meta) -> None:
    values = meta.as_row(table_name, row_id)
    if meta.stored:
        conn.execute(update(_meta).where(_meta.c.table_name == table_name, _meta.c.row_id == row_id)
                     .values(**{k: v for k, v in values.items() if k not in ("table_name", "row_id")}))
    else:
        conn.execute(insert(_meta), [values])
        meta.stored = True


class MetaWriter:
    """Metadata to store, written in one upsert per flush rather than a statement per
    row: a pass moves up to a batch of rows at a time. The last metadata added for a row
    is the one written."""

    def __init__(self, table_name: str, fields: Mapping) -> None:
        self.table_name, self.fields = table_name, fields
        self.rows: dict[uuid.UUID, dict] = {}

    def add(self, row_id: uuid.UUID, meta: Meta) -> None:
        self.rows[row_id] = meta.as_row(self.table_name, row_id, self.fields)
        meta.stored = True

    def flush(self, conn: Connection) -> None:
        write_rows(conn, _meta, list(self.rows.values()), keys=("table_name", "row_id"))
        self.rows.clear()


def restamp(clock: Clock, row: Mapping, meta: Meta | None, hashes: dict[str, str],
            resolved: bool = False) -> Meta | None:
    """The metadata of `row` after a local write, or None when its content did not change.
    `resolved`: a manual conflict on the row was resolved, so the new version has seen the
    remote versions the conflict held (`meta.pending`) and must supersede them."""
    if meta is None:
        hlc = clock.tick(row.get("updated_at"))
        return Meta(clock.site, hlc, {clock.site: hlc}, {f: [clock.site, hlc] for f in hashes}, hashes,
                    version=row["sync_version"])
    before = meta.hashes        # a property (decoded on first read): asked once, not per field
    changed = [f for f, h in hashes.items() if before.get(f) != h]
    if not changed and not (resolved and meta.pending):
        meta.version = row["sync_version"]
        return meta
    hlc = clock.tick(row.get("updated_at"))
    vv = merged(meta.vv, meta.pending or {}) if resolved else dict(meta.vv)
    vv[clock.site] = hlc
    dots = dict(meta.dots)
    for f in changed:
        dots[f] = [clock.site, hlc]
    return Meta(clock.site, hlc, vv, dots, hashes, None, None if resolved else meta.pending,
                row["sync_version"], stored=meta.stored)


def open_conflict_rows(conn: Connection, table_name: str, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    from strongroom.core.db.models import SyncConflict
    c = SyncConflict.__table__
    from strongroom.core.sync.idsets import among
    return set(conn.execute(select(c.c.row_id).where(c.c.table_name == table_name, c.c.status == "open",
                                                     among(conn, c.c.row_id, ids))).scalars())


def stamp_rows(conn: Connection, clock: Clock, spec: SyncTable, rows: list[Mapping],
               metas: dict[uuid.UUID, Meta]) -> int:
    """Stamp the given rows (full rows, read in this transaction) against their metadata;
    updates `metas` in place and stores what changed. Returns how many got a new version."""
    pending = [r["id"] for r in rows if (m := metas.get(r["id"])) is not None and m.pending]
    still_open = open_conflict_rows(conn, spec.name, pending) if pending else set()
    writer = MetaWriter(spec.name, spec.fields)
    fresh = 0
    for row in rows:
        meta = metas.get(row["id"])
        if meta is not None and meta.version == row["sync_version"]:
            continue
        before_hlc = meta.hlc if meta is not None else None
        resolved = meta is not None and bool(meta.pending) and row["id"] not in still_open
        new = restamp(clock, row, meta, field_hashes(spec, row), resolved)
        if new.hlc != before_hlc:
            fresh += 1
        metas[row["id"]] = new
        writer.add(row["id"], new)
    writer.flush(conn)
    return fresh
