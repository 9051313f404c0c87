"""The `[sync]` configuration: peers, and per table how and how often it syncs (the
source's sync_configurations: enabled, strategy, interval, batch size, retries).

Defaults are what a clinic would choose: clinical tables merge field by field, and an
edit of the same field on two sites (or a delete against an edit) waits for a person;
the practice record, its staff and its service catalogue take the last write. Clinical free text is never merged within the
text (core.sync.merge).
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Rows per batch, each one transaction on the receiving site: what a table's settings
# and a pass (passes.PassOptions) take when none is given. 2,000 is what bench/sync.py
# measures (it takes this default): at 500 the same 100k-each-way pass made four times
# the commits and per-batch queries and took 1.6 times as long (78 s against 49 s).
DEFAULT_BATCH_SIZE = 2000

Strategy = Literal["last_write_wins", "timestamp_based", "field_level", "manual"]
DEFAULT_STRATEGIES = {"practices": "last_write_wins", "staff": "last_write_wins", "services": "last_write_wins",
                      "clients": "field_level", "therapy_sessions": "field_level"}
# The manual queue resolves these tables field by field (core.sync.conflicts).
MANUAL_TABLES = ("clients", "therapy_sessions")
_PEER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyncTableSettings(_Section):
    enabled: bool = True
    strategy: Strategy | None = None              # None: the table's default
    # field_level: what a field changed on both sides becomes.
    fallback: Literal["manual", "last_write_wins"] = "manual"
    # A scheduled pass moves this table only if its last pass is at least this old.
    interval_minutes: Annotated[int, Field(ge=0, le=10080)] = 0
    batch_size: Annotated[int, Field(ge=1, le=5000)] = DEFAULT_BATCH_SIZE
    # A batch that fails for a transient reason (connection lost) is tried again.
    retry_attempts: Annotated[int, Field(ge=0, le=20)] = 3
    retry_delay_seconds: Annotated[float, Field(ge=0, le=3600)] = 2.0


class SyncPeerSettings(_Section):
    url: str
    direction: Literal["both", "push", "pull"] = "both"
    # Cron (UTC) for this peer's passes; none: only when asked (strongroom sync run).
    schedule: str | None = None
    # Per-table strategy for this peer, overriding [sync.tables.NAME].strategy.
    strategies: dict[str, Strategy] = {}


class SyncSettings(_Section):
    # Two sites' clocks may differ by this much before timestamp_based stops deciding.
    clock_skew_seconds: Annotated[float, Field(ge=0, le=86400)] = 5.0
    # A peer that failed this many passes in a row is notified about (and health says so).
    notify_after_failures: Annotated[int, Field(ge=1, le=1000)] = 3
    # First retry of a failed scheduled pass after this long, doubling up to an hour.
    retry_delay_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    # Health and compliance: a peer is lagging beyond this, a conflict stale beyond that.
    max_lag_minutes: Annotated[int, Field(ge=1, le=100_000)] = 1440
    stale_conflict_hours: Annotated[int, Field(ge=1, le=100_000)] = 24
    tables: dict[str, SyncTableSettings] = {}
    peers: dict[str, SyncPeerSettings] = {}

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: dict[str, SyncTableSettings]) -> dict[str, SyncTableSettings]:
        for name, table in value.items():
            if name not in DEFAULT_STRATEGIES:
                raise ValueError(f"not a synced table (synced: {', '.join(DEFAULT_STRATEGIES)})")
            if (table.strategy == "manual" or (table.strategy == "field_level" and table.fallback == "manual")) \
                    and name not in MANUAL_TABLES:
                raise ValueError(f"{name}: the manual queue resolves only {', '.join(MANUAL_TABLES)}; "
                                 "use last_write_wins or timestamp_based (or fallback = last_write_wins)")
        return value

    @field_validator("peers")
    @classmethod
    def _peers(cls, value: dict[str, SyncPeerSettings]) -> dict[str, SyncPeerSettings]:
        for name, peer in value.items():
            if not _PEER_NAME.match(name):
                raise ValueError("peer names are 1 to 64 letters, digits, '.', '_' or '-'")
            for table, strategy in peer.strategies.items():
                if table not in DEFAULT_STRATEGIES:
                    raise ValueError(f"{name}: strategies names a table that is not synced "
                                     f"(synced: {', '.join(DEFAULT_STRATEGIES)})")
                if strategy == "manual" and table not in MANUAL_TABLES:
                    raise ValueError(f"{name}: the manual queue resolves only {', '.join(MANUAL_TABLES)}")
            if peer.schedule is not None:
                from strongroom.core.schedule import cron_trigger
                try:
                    cron_trigger(peer.schedule)
                except ValueError:
                    raise ValueError(f"{name}: schedule is not a valid cron expression") from None
        return value

    def table(self, name: str) -> SyncTableSettings:
        return self.tables.get(name) or SyncTableSettings()

    def strategy(self, table: str, peer_strategies: dict | None = None) -> str:
        chosen = (peer_strategies or {}).get(table) or self.table(table).strategy
        return chosen or DEFAULT_STRATEGIES[table]
