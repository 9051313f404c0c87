"""What may be exported, and an export request checked before anything is written.

Only the clinical tables are exportable, and of them only the columns a person would
want in a spreadsheet or report: ciphertext, blind indexes, key ids, checksums and sync
bookkeeping never leave. Encrypted fields go by their logical name (`ssn`, not
`ssn_enc`). Every problem is reported by name (table, field, filter), never by value.

Besides explicit since/until, a request may name a relative `range` (last_30_days,
last_90_days, this_month, last_quarter): whole days in the practice's time zone,
resolved once, when the export is submitted, into concrete since/until that the
export's record and manifest carry, so a file says which period it covers. Status
filters (client_status; session_status and payment_status) take one or more of their
column's values and apply to the table that has that column, which must be exported.
"""
from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_

from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.db.models import ClientStatus, PaymentStatus, SessionStatus
from strongroom.core.errors import ValidationError
from strongroom.core.repository.records import MODELS

FORMATS = ("csv", "ndjson", "json", "xml", "pdf")
MASKING_PROFILES = ("masked", "full")
MIN_PASSWORD = 8
_HIDDEN = {"key_id", "sync_version", "data_checksum", "deleted_at", "conflict_resolution_strategy",
           "storage_key"}
# The date a table's since/until filter applies to: when a session took place, when
# anything else was recorded.
DATE_FIELD = {"clients": "created_at", "therapy_sessions": "starts_at", "client_files": "created_at",
              "staff": "created_at", "services": "created_at"}
# The tables whose rows belong to one client, so a client_id filter means something there.
CLIENT_TABLES = ("clients", "therapy_sessions", "client_files")
RANGES = ("last_30_days", "last_90_days", "this_month", "last_quarter")
# status filter -> (the table it applies to, its column, the values it takes)
STATUS_FILTERS = {"client_status": ("clients", "status", ClientStatus),
                  "session_status": ("therapy_sessions", "status", SessionStatus),
                  "payment_status": ("therapy_sessions", "payment_status", PaymentStatus)}
FILTERS = ("since", "until", "range", "practice_id", "client_id", *STATUS_FILTERS)


def _fields(table: str) -> tuple[str, ...]:
    columns = [c.name for c in MODELS[table].__table__.columns
               if c.name not in _HIDDEN and not c.name.endswith(("_enc", "_bidx"))]
    return tuple(columns) + CLIENT_KEYED.get(table, ())


EXPORTABLE: dict[str, tuple[str, ...]] = {table: _fields(table) for table in MODELS}


def phi_fields(table: str) -> tuple[str, ...]:
    return CLIENT_KEYED.get(table, ())


def catalogue() -> list[dict]:
    """The tables and fields one may export (for the console's form and the CLI)."""
    return [{"table": t, "fields": list(fields), "phi": list(phi_fields(t)), "date_field": DATE_FIELD[t]}
            for t, fields in EXPORTABLE.items()]


def status_filters() -> list[dict]:
    """Each status filter with the table it applies to and the values it takes, in their
    declared order (for the console's form, so it never keeps a second copy)."""
    return [{"filter": name, "table": table, "column": column, "values": [v.value for v in values]}
            for name, (table, column, values) in STATUS_FILTERS.items()]


def _bound(name: str, value: object, *, end: bool) -> datetime | None:
    """A filter bound: an ISO date (a whole day, inclusive) or an ISO datetime (naive = UTC)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end else time.min, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"export: filter {name} is not an ISO date (YYYY-MM-DD) or datetime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _uuid(name: str, value: object) -> uuid.UUID | None:
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(f"export: filter {name} is not a UUID") from None


def _listed(name: str, value: object) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ValidationError(f"export: {name} must be a list of names or a comma-separated string")


def check_tables(tables: object, fields: object) -> dict[str, tuple[str, ...]]:
    """{table: fields in export order}; `fields` maps table -> names (missing: all)."""
    names = _listed("tables", tables)
    if not names:
        raise ValidationError(f"export: name at least one table ({', '.join(EXPORTABLE)})")
    fields = fields or {}
    if not isinstance(fields, dict):
        raise ValidationError("export: fields must map a table to its field names")
    unknown = [t for t in list(names) + list(fields) if t not in EXPORTABLE]
    if unknown:
        raise ValidationError(f"export: {len(set(unknown))} table name(s) not exportable "
                              f"(exportable: {', '.join(EXPORTABLE)})")
    stray = [t for t in fields if t not in names]
    if stray:
        raise ValidationError(f"export: fields given for table(s) not exported: {', '.join(stray)}")
    chosen: dict[str, tuple[str, ...]] = {}
    for table in dict.fromkeys(names):
        wanted = _listed(f"fields of {table}", fields[table]) if table in fields else list(EXPORTABLE[table])
        bad = [f for f in wanted if f not in EXPORTABLE[table]]
        if bad:
            raise ValidationError(f"export: {len(bad)} field name(s) not in table {table} "
                                  f"(fields: {', '.join(EXPORTABLE[table])})")
        if not wanted:
            raise ValidationError(f"export: no fields chosen for table {table}")
        chosen[table] = tuple(dict.fromkeys(wanted))
    return chosen


def check_filters(filters: object, tables=None) -> dict:
    """Normalised filters (JSON-ready): since, until or range, practice_id, client_id,
    and status filters (each a list of values in their declared order). With `tables`,
    a status filter must apply to one of them. A range stays a name here: it becomes
    dates in `resolve_range`, when the export is submitted."""
    filters = filters or {}
    if not isinstance(filters, dict):
        raise ValidationError("export: filters must be an object")
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise ValidationError(f"export: {len(unknown)} unknown filter(s) (known: {', '.join(FILTERS)})")
    since = _bound("since", filters.get("since"), end=False)
    until = _bound("until", filters.get("until"), end=True)
    if since and until and since > until:
        raise ValidationError("export: filter since is after until")
    period = _range(filters.get("range"))
    if period and (since or until):
        raise ValidationError("export: filter range cannot be combined with since or until")
    out = {"since": since, "until": until, "range": period,
           "practice_id": _uuid("practice_id", filters.get("practice_id")),
           "client_id": _uuid("client_id", filters.get("client_id"))}
    out = {k: (v.isoformat() if isinstance(v, datetime) else str(v)) for k, v in out.items() if v is not None}
    if "client_id" in out and tables is not None:
        for table in tables:
            _client_filter_applies(table)
    for name, (table, _, values) in STATUS_FILTERS.items():
        chosen = _statuses(name, filters.get(name), values)
        if not chosen:
            continue
        if tables is not None and table not in tables:
            raise ValidationError(f"export: filter {name} applies to table {table}, which is not exported")
        out[name] = chosen
    return out


def _range(value: object) -> str | None:
    if value in (None, ""):
        return None
    name = str(value).strip().lower()
    if name not in RANGES:
        raise ValidationError(f"export: filter range is not one of {', '.join(RANGES)}")
    return name


def _statuses(name: str, value: object, values: type[enum.Enum]) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        given = [v.strip().upper() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        given = [v.strip().upper() for v in value if v.strip()]
    else:
        raise ValidationError(f"export: filter {name} must be a list of values or a comma-separated string")
    known = [v.value for v in values]
    bad = [v for v in given if v not in known]
    if bad:
        raise ValidationError(f"export: filter {name} has {len(bad)} unknown value(s) (known: {', '.join(known)})")
    return [v for v in known if v in given]


def check_zone(name: object) -> ZoneInfo:
    """A practice's time zone; a ValidationError (naming the setting, not the value) if
    this system's tz database does not know it."""
    try:
        return ZoneInfo(str(name))
    except (ValueError, KeyError, OSError):
        raise ValidationError("export: the practice's timezone is not a known IANA time zone") from None


def range_days(name: str, today: date) -> tuple[date, date]:
    """The first and last day (inclusive) of the named range, seen from `today`: the
    last 30 or 90 days end today; this month is the whole calendar month; last quarter
    the whole calendar quarter before this one."""
    if name == "last_30_days":
        return today - timedelta(days=29), today
    if name == "last_90_days":
        return today - timedelta(days=89), today
    if name == "this_month":
        first = today.replace(day=1)
        return first, _next_month(first) - timedelta(days=1)
    if name == "last_quarter":
        this_quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        first = date(this_quarter.year - (this_quarter.month == 1), (this_quarter.month - 4) % 12 + 1, 1)
        return first, this_quarter - timedelta(days=1)
    raise ValidationError(f"export: filter range is not one of {', '.join(RANGES)}")


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def resolve_range(filters: dict, now: datetime, zone: ZoneInfo) -> dict:
    """Checked filters with their `range` turned into since/until: whole days in `zone`
    as seen at `now` (aware), written with their UTC offset, and the zone's name kept
    beside them. Filters without a range are returned as they are."""
    if "range" not in filters:
        return filters
    first, last = range_days(filters["range"], now.astimezone(zone).date())
    since = datetime.combine(first, time.min, tzinfo=zone)
    until = datetime.combine(last, time.max, tzinfo=zone)
    return {**filters, "since": since.isoformat(), "until": until.isoformat(), "time_zone": zone.key}


def where_clause(table: str, filters: dict) -> ColumnElement[bool]:
    """Live rows of `table` matching the (checked) filters."""
    columns = MODELS[table].__table__.c
    terms = [columns.deleted_at.is_(None)]
    if "since" in filters:
        terms.append(columns[DATE_FIELD[table]] >= datetime.fromisoformat(filters["since"]))
    if "until" in filters:
        terms.append(columns[DATE_FIELD[table]] <= datetime.fromisoformat(filters["until"]))
    if "practice_id" in filters:
        terms.append(columns.practice_id == uuid.UUID(filters["practice_id"]))
    if "client_id" in filters:
        _client_filter_applies(table)
        column = columns.id if table == "clients" else columns.client_id
        terms.append(column == uuid.UUID(filters["client_id"]))
    for name, (applies_to, column_name, values) in STATUS_FILTERS.items():
        if name in filters and applies_to == table:
            terms.append(columns[column_name].in_([values(v) for v in filters[name]]))
    return and_(*terms)


def _client_filter_applies(table: str) -> None:
    """Refuse a client_id filter on a table that holds no client's rows: exporting all of
    it, or none, would each surprise someone asking for one client's records."""
    if table not in CLIENT_TABLES:
        raise ValidationError(f"export: filter client_id selects one client's records; table {table} holds "
                              "none (export it without client_id)")


def check_format(value: object) -> str:
    fmt = str(value or "").strip().lower()
    if fmt not in FORMATS:
        raise ValidationError(f"export: unknown format (known: {', '.join(FORMATS)})")
    return fmt


def check_masking(value: object) -> str:
    profile = str(value or "masked").strip().lower()
    if profile not in MASKING_PROFILES:
        raise ValidationError("export: unknown masking profile "
                              f"(known: {', '.join(MASKING_PROFILES)})")
    return profile
