"""What may be exported, and an export request checked before anything is written.

Only the clinical tables are exportable, and of them only the columns a person would
want in a spreadsheet or report: ciphertext, blind indexes, key ids, checksums and sync
bookkeeping never leave. Encrypted fields go by their logical name (`ssn`, not
`ssn_enc`). Every problem is reported by name (table, field, filter), never by value.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, time, timezone

from sqlalchemy import ColumnElement, and_

from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.errors import ValidationError
from strongroom.core.repository.records import MODELS

FORMATS = ("csv", "ndjson", "json", "xml", "pdf")
MASKING_PROFILES = ("masked", "full")
MIN_PASSWORD = 8
_HIDDEN = {"key_id", "sync_version", "data_checksum", "deleted_at", "conflict_resolution_strategy",
           "storage_key"}
# The date a table's since/until filter applies to: when a session took place, when
# anything else was recorded.
DATE_FIELD = {"clients": "created_at", "therapy_sessions": "starts_at", "client_files": "created_at"}


def _fields(table: str) -> tuple[str, ...]:
    columns = [c.name for c in MODELS[table].__table__.columns
               if c.name not in _HIDDEN and not c.name.endswith(("_enc", "_bidx"))]
    return tuple(columns) + CLIENT_KEYED[table]


EXPORTABLE: dict[str, tuple[str, ...]] = {table: _fields(table) for table in MODELS}


def phi_fields(table: str) -> tuple[str, ...]:
    return CLIENT_KEYED[table]


def catalogue() -> list[dict]:
    """The tables and fields one may export (for the console's form and the CLI)."""
    return [{"table": t, "fields": list(fields), "phi": list(phi_fields(t)), "date_field": DATE_FIELD[t]}
            for t, fields in EXPORTABLE.items()]


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


def check_filters(filters: object) -> dict:
    """Normalised filters (JSON-ready): since, until, practice_id, client_id."""
    filters = filters or {}
    if not isinstance(filters, dict):
        raise ValidationError("export: filters must be an object")
    unknown = set(filters) - {"since", "until", "practice_id", "client_id"}
    if unknown:
        raise ValidationError(f"export: {len(unknown)} unknown filter(s) "
                              "(known: since, until, practice_id, client_id)")
    since = _bound("since", filters.get("since"), end=False)
    until = _bound("until", filters.get("until"), end=True)
    if since and until and since > until:
        raise ValidationError("export: filter since is after until")
    out = {"since": since, "until": until, "practice_id": _uuid("practice_id", filters.get("practice_id")),
           "client_id": _uuid("client_id", filters.get("client_id"))}
    return {k: (v.isoformat() if isinstance(v, datetime) else str(v)) for k, v in out.items() if v is not None}


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
        column = columns.id if table == "clients" else columns.client_id
        terms.append(column == uuid.UUID(filters["client_id"]))
    return and_(*terms)


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
