"""The DataTable set-up every tab repeats."""
from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import DataTable


def add_columns(table: DataTable, columns: Iterable[tuple]) -> None:
    """Columns from (label, key) or (label, key, width) rows: the tabs' column tables."""
    for label, key, *width in columns:
        table.add_column(label, key=key, width=width[0] if width else None)
