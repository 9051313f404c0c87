"""This database as a sync site: its stable id and its hybrid logical clock.

Each site orders its own edits with a hybrid logical clock (HLC): a 64-bit value whose
high bits are milliseconds of wall time and whose low 16 bits count events within one
millisecond. A site's clock never goes backwards and never falls behind a value it has
seen from a peer, so "newer" (last write wins) means the same on every site even when
their wall clocks disagree a little; ties are broken by site id. The clock's last value
lives in the database (`sync_site.hlc`), so it survives restarts and is shared by every
process writing to the database.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from strongroom.core.db.models import SyncSite
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError

LOGICAL_BITS = 16
_site = SyncSite.__table__


def hlc_of(moment: datetime, logical: int = 0) -> int:
    """The HLC value of a wall-clock moment (milliseconds, then the logical counter)."""
    return (int(moment.timestamp() * 1000) << LOGICAL_BITS) | logical


def site_id(conn: Connection) -> str:
    """This database's site id (made by migration 0009 or `init`)."""
    found = conn.execute(select(_site.c.id)).scalars().all()
    if len(found) != 1:
        raise IntegrityError(f"sync_site must hold exactly one row, found {len(found)}; "
                             "the database was not migrated by Strongroom")
    return found[0]


class Clock:
    """Hands out HLC values inside one transaction: reads the stored clock once (locking
    the row), ticks in memory and writes the last value back in `save`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        row = conn.execute(select(_site.c.id, _site.c.hlc).with_for_update()).one()
        self.site, self.value, self._stored = row.id, row.hlc, row.hlc

    def tick(self, moment: datetime | None = None) -> int:
        """A new value, after every value issued or seen and not before `moment`."""
        self.value = max(self.value + 1, hlc_of(moment or utcnow()))
        return self.value

    def observe(self, value: int) -> None:
        """A value seen from a peer: later ticks come after it."""
        if value > self.value:
            self.value = value

    def save(self) -> None:
        if self.value != self._stored:
            self.conn.execute(update(_site).values(hlc=self.value))
            self._stored = self.value
