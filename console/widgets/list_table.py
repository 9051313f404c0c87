"""A DataTable that `/` can filter: every row kept, only the matching ones shown; and a
value wider than its column ends in `…` rather than being cut where the column ends
(`user:demo-mana` read as a whole name). A text cell is text, never Rich markup: a
DataTable reads a str cell as markup, so a service named `Intake [/x]` (or a session
note shown in a conflict) raised MarkupError and took the console down.

Textual's DataTable cannot hide a row, so a filter that removed rows would lose them:
the next live update of a hidden row (`update_cell`) would fail, and clearing the filter
could not bring it back. ListTable keeps every row it is given, in order, and shows the
ones whose visible text matches the filter. Tabs use it exactly as a DataTable
(add_row, update_cell, remove_row, clear) and never see the difference.

Matching is fuzzy, the command palette's own matcher (textual.fuzzy), term by term:
each space-separated term must match somewhere in the row's visible cells, so
`bkp fail` finds a failed backup whatever the column order.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from rich.text import Text
from textual.fuzzy import Matcher
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, RowDoesNotExist, RowKey

_keys = itertools.count()


@dataclass
class _Row:
    cells: list
    height: int | None
    label: object


def plain(cell: object) -> str:
    """What a person reads in a cell: Rich markup and styles dropped."""
    if isinstance(cell, Text):
        return cell.plain
    return "" if cell is None else str(cell)


def as_text(cell: object) -> object:
    """A str cell as plain Text (one line, as DataTable draws a str), so brackets in data
    are shown, not parsed as markup; anything else as it is."""
    return Text(cell, no_wrap=True, end="") if isinstance(cell, str) else cell


def matches(terms: list[Matcher], cells: list) -> bool:
    text = "  ".join(plain(c) for c in cells)
    return all(term.match(text) > 0 for term in terms)


class ListTable(DataTable):
    """A DataTable with `filter_text`: rows not matching it are held back, not lost."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rows: dict[str, _Row] = {}
        self._terms: list[Matcher] = []
        self.filter_text = ""

    # -- what a tab calls, as on a DataTable ------------------------------------------------
    def add_row(self, *cells: CellType, height: int | None = 1, key: str | None = None,
                label=None) -> RowKey:
        key = key if key is not None else f"_row{next(_keys)}"
        self._rows[key] = _Row(list(cells), height, label)
        if self._shown(self._rows[key]):
            return super().add_row(*self._fitted(cells), height=height, key=key, label=label)
        return RowKey(key)

    def update_cell(self, row_key: RowKey | str, column_key, value: CellType, *,
                    update_width: bool = False) -> None:
        key = row_key.value if isinstance(row_key, RowKey) else row_key
        row = self._held(key)
        index = self.get_column_index(column_key)
        row.cells[index] = value
        if key in self.rows:
            super().update_cell(row_key, column_key, self._fit(value, self.ordered_columns[index]),
                                update_width=update_width)
        elif self._shown(row):                     # the change makes it match: show it again
            self._refilter()

    def remove_row(self, row_key: RowKey | str) -> None:
        key = row_key.value if isinstance(row_key, RowKey) else row_key
        self._held(key)
        del self._rows[key]
        if key in self.rows:
            super().remove_row(row_key)

    def clear(self, columns: bool = False):
        self._rows.clear()
        return super().clear(columns)

    def get_cell(self, row_key: RowKey | str, column_key) -> CellType:
        """The value as given (whole, not cut to its column), shown or not. (get_row is
        left as DataTable's, what is drawn: DataTable draws through it.)"""
        key = row_key.value if isinstance(row_key, RowKey) else row_key
        return self._held(key).cells[self.get_column_index(column_key)]

    def _held(self, key: str) -> _Row:
        """The row under `key`, shown or not; RowDoesNotExist, as DataTable raises, if none."""
        try:
            return self._rows[key]
        except KeyError:
            raise RowDoesNotExist(f"no row with key {key!r}") from None

    # -- the filter ----------------------------------------------------------------------
    @property
    def total_rows(self) -> int:
        """Rows held, shown or not (`row_count` is the shown ones)."""
        return len(self._rows)

    def set_filter(self, text: str) -> None:
        """Show the rows matching `text` (empty: all), keeping the cursor on the row it
        was on when that row still shows."""
        text = " ".join(text.split())
        if text == self.filter_text:
            return
        self.filter_text = text
        self._terms = [Matcher(term) for term in text.split()]
        self._refilter()

    def _fitted(self, cells) -> list:
        return [self._fit(cell, column) for cell, column in zip(cells, self.ordered_columns)] + \
            [as_text(cell) for cell in cells[len(self.ordered_columns):]]

    @staticmethod
    def _fit(cell, column):
        """`cell` as text (see as_text), shortened to a fixed-width column with an
        ellipsis (a copy: the row keeps its whole value, which the filter matches)."""
        cell = as_text(cell)
        if column.auto_width or not isinstance(cell, Text) or cell.cell_len <= column.width:
            return cell
        cut = cell.copy()
        cut.truncate(column.width, overflow="ellipsis")
        return cut

    def _shown(self, row: _Row) -> bool:
        return not self._terms or matches(self._terms, row.cells)

    def _refilter(self) -> None:
        current = None
        if self.row_count and self.cursor_row >= 0:
            current = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        super().clear()
        for key, row in self._rows.items():
            if self._shown(row):
                super().add_row(*self._fitted(row.cells), height=row.height, key=key, label=row.label)
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current))
