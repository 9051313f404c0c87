"""export.*: history, one export with its manifest, what may be exported, starting one,
and saved configurations."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result
from strongroom.core.protocol.models.status import RunningJob


class ListArgs(Args):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=2 ** 31)
    status: Literal["running", "succeeded", "failed", "interrupted", "expired"] | None = None


class ShowArgs(Args):
    export_id: uuid.UUID


class RunArgs(Args):
    tables: list[str] | str | None = None
    fields: dict[str, list[str] | str] = Field(default_factory=dict)
    filters: dict[str, str] = Field(default_factory=dict)
    format: str | None = Field(default=None, max_length=16)
    masking: str = Field(default="masked", max_length=16)
    encrypt: bool = False
    password: str | None = Field(default=None, max_length=1024)
    configuration: str | None = Field(default=None, max_length=120)
    bom: bool = Field(default=False, description="CSV only: a UTF-8 byte order mark first, for spreadsheets.")
    files: bool = Field(default=False, description="The content of the client files the client_files table "
                                                   "lists, in the encrypted ZIP (needs encrypt, masking full).")


class SaveArgs(Args):
    name: str = Field(min_length=1, max_length=63)
    tables: list[str] | str
    fields: dict[str, list[str] | str] = Field(default_factory=dict)
    filters: dict[str, str] = Field(default_factory=dict)
    format: str = Field(max_length=16)
    masking: str = Field(default="masked", max_length=16)
    encrypt: bool = False
    retention_days: int | None = Field(default=None, description="Days its exports' files are kept (1-3650; "
                                                                 "default [export] retention_days).")
    schedule: str | None = Field(default=None, max_length=120,
                                 description="crontab(5) expression (UTC): the daemon runs it then.")
    password_credential: str | None = Field(default=None, max_length=64, description=(
        "Encrypted and scheduled: the systemd credential holding its ZIP password."))


class ConfigureArgs(Args):
    name: str = Field(min_length=1, max_length=63)
    schedule: str | None = Field(default=None, max_length=120,
                                 description='crontab(5) expression (UTC); "" runs it by hand only.')
    password_credential: str | None = Field(default=None, max_length=64, description=(
        'The systemd credential holding its ZIP password; "" clears it.'))
    retention_days: int | str | None = Field(default=None, description=(
        'Days its exports are kept (1-3650); "" takes [export] retention_days.'))


class ExportRow(Result):
    id: uuid.UUID
    configuration_id: uuid.UUID | None
    requested_by: str
    format: str
    filters: dict[str, Any]     # the request as run: tables, fields, filters (core/jobs/export.py)
    status: str
    row_count: int | None
    sha256: str | None
    location: str | None
    created_at: datetime
    finished_at: datetime | None
    error: str | None


class ExportPage(Result):
    items: list[ExportRow]
    total: int
    limit: int
    offset: int
    running: list[RunningJob]


class ExportShown(ExportRow):
    manifest: dict[str, Any] | None     # the export's MANIFEST.json as written (core/export/archive.py)
    manifest_ok: bool | None            # whether it still matches its SHA-256; None: no location


class ExportableTable(Result):
    table: str
    fields: list[str]
    phi: list[str]
    date_field: str | None


class StatusFilter(Result):
    filter: str                 # the filter's name in a request's filters, e.g. client_status
    table: str                  # the table it applies to, which must be exported
    column: str
    values: list[str]           # the values it takes, in their declared order


class SavedConfigurationBrief(Result):
    name: str
    format: str
    masking_profile: str
    encryption_enabled: bool
    schedule: str | None


class ExportCatalogue(Result):
    tables: list[ExportableTable]
    formats: list[str]
    masking_profiles: list[str]
    ranges: list[str]           # filters.range: relative periods, exclusive with since/until
    status_filters: list[StatusFilter]
    configurations: list[SavedConfigurationBrief]
    min_password: int
    retention_days: int
    max_per_hour: int


class SavedConfiguration(Result):
    """A saved export configuration (never a password)."""
    id: uuid.UUID
    name: str
    format: str
    filters: dict[str, Any]         # the saved filters (core/export/spec.py)
    fields: list[str]               # the fields chosen, as table.field
    masking_profile: str
    encryption_enabled: bool
    retention_days: int | None
    schedule: str | None
    next_export_at: datetime | None
    password_credential: str | None
    created_by: str | None


class SavedConfigurationPage(Result):
    items: list[SavedConfiguration]
    retention_days: int
