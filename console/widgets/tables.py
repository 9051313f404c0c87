"""The DataTable set-up every tab repeats."""
from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import DataTable


def add_columns(table: DataTable, columns: Iterable[tuple]) -> None:
    """Columns from (label, key) or (label, key, width) rows: the tabs' column tables."""
    for label, key, *width in columns:
        table.add_column(label, key=key, width=width[0] if width else None)


def fit(text: str, width: int | None) -> str:
    """`text` cut to `width` cells with an ellipsis, so a cut value says it was cut."""
    if width is None or len(text) <= width:
        return text
    return text[:max(width - 1, 0)] + "…"
