"""One client's files, opened from the practice screen (`f`) once the client is chosen in
the client picker: what `strongroom files add|list|get|remove` does, for a person at the
console (issue 19).

Listed newest first from file.list. `a` adds a file from a local path, `s` saves the
selected one to a local path, `d` removes it (after the confirm dialog), `y` copies its
id for the CLI. The content travels in pieces over the control socket exactly as the
CLI sends it (helpers/transfers.py, one loop for both): the daemon never opens a path
of the console's, which may be on another machine. A save is written beside its
destination and renamed in only when whole, and never replaces a file already there
unless the person confirms it. A path that is missing, a folder, or unreadable is said
so under the field and nothing is sent.

Names and descriptions are PHI: the daemon sends them only to a caller with phi:read
(else the list shows —), and this screen never puts them in a notice or a log line, nor
shows a file's content. Listing and saving need `table:client_files:read` (saving phi:read
too, as file.get does), adding `:write`, removing `:delete`; a key the user may not use
is shown disabled with the reason, and the daemon checks again.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from strongroom.console.client import ClientError
from strongroom.console.helpers.gates import Gated
from strongroom.console.helpers.identity import Identity
from strongroom.console.helpers.text import fit, size, when
from strongroom.console.helpers.transfers import download, guess_type, upload
from strongroom.console.helpers.workers import ask, fetch, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.form import FormScreen
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from strongroom.core.errors import StrongroomError
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

COLUMNS = (("Name", "name", 24), ("Type", "type", 18), ("Size", "size", 8), ("Scan", "scan", 8),
           ("Uploaded (UTC)", "uploaded", 16))
READ = "table:client_files:read"
WRITE = "table:client_files:write"
DELETE = "table:client_files:delete"
# Which permissions each action needs, all of them; the daemon checks again.
NEEDS: dict[str, tuple[str, ...]] = {"add": (WRITE,), "save": (READ, "phi:read"), "remove": (DELETE,),
                                     "copy_id": ()}
ADD_FIELDS = (("path", "Path of the file to add", "e.g. ~/scans/referral.pdf"),
              ("description", "Description (optional)", "kept encrypted with the file"),
              ("content_type", "Content type (optional)", "guessed from the name, e.g. application/pdf"))
SAVE_FIELDS = (("path", "Save to (a file path)", "e.g. ~/Downloads/referral.pdf"),)


def local_path(typed: str) -> Path:
    """A path as typed in a form: ~ expanded, relative to the console's working folder."""
    return Path(typed).expanduser().absolute()


def readable_file(typed: str) -> tuple[Path | None, str | None]:
    """(the path, None) when `typed` names a regular file the console can read, else
    (None, why not) in the form's `field: reason` way, so nothing is sent for it."""
    path = local_path(typed)
    if not path.exists():
        return None, "path: no file there"
    if path.is_dir():
        return None, "path: that is a folder; give a file in it"
    if not path.is_file():
        return None, "path: not a regular file"
    if not os.access(path, os.R_OK):
        return None, "path: not readable by this console's user"
    return path, None


def writable_target(typed: str) -> tuple[Path | None, str | None]:
    """(the path, None) when a file may be written at `typed` (whether one is already there
    is asked separately), else (None, why not)."""
    path = local_path(typed)
    if path.is_dir():
        return None, "path: that is a folder; give a file name in it"
    if not path.parent.is_dir():
        return None, "path: its folder does not exist"
    if path.exists() and not path.is_file():
        return None, "path: something other than a file is there"
    return path, None


class AppCaller:
    """The app's connection as a transfer's Caller (helpers/transfers.py): app.call takes no
    binary content, so this calls the client directly and, as app.call does, sends the
    person back to login when the daemon says the session is gone."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None,
                   content: Any = None) -> Any:
        return (await self.call_with_content(cmd, args, timeout=timeout, content=content))[0]

    async def call_with_content(self, cmd: str, args: dict | None = None, *, timeout: float | None = None,
                                content: Any = None) -> tuple[Any, memoryview | None]:
        from strongroom.console.app import SessionEnded

        try:
            return await self.app.client.call_with_content(cmd, args, timeout=timeout, content=content)
        except ClientError as err:
            if err.code == "unauthenticated":
                self.app.post_message(SessionEnded(err.message))
            raise


class FilesScreen(Gated, ModalScreen[None]):
    NEEDS = NEEDS
    DEFAULT_CSS = """
    FilesScreen #files-dialog { width: 96%; max-width: 110; height: 90%; border: thick $primary;
                                background: $surface; padding: 0 1; }
    FilesScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("a", "add", "Add"),
                Binding("s", "save", "Save to…"), Binding("d", "remove", "Remove"),
                Binding("y", "copy_id", "Copy id"), Binding("ctrl+r", "reload", "Reload")]

    def __init__(self, identity: Identity, client_id: str) -> None:
        super().__init__()
        self.identity = identity
        self.client_id = client_id
        self.loaded = False
        self.files: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="files-dialog"):
            yield Plain(f"Files · client {self.client_id[:8]}… · a add · s save · d remove · y copy id · esc",
                        classes="dialog-title")
            yield ListTable(id="files-table", cursor_type="row", zebra_stripes=True)
            yield Plain("Loading…", id="files-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one("#files-table", DataTable), COLUMNS)
        self.query_one("#files-table", DataTable).focus()
        self.load()

    # --- what may be done, and why not --------------------------------------------------

    def selected(self) -> dict | None:
        table = self.query_one("#files-table", DataTable)
        if not table.row_count:
            return None
        return self.files.get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def why_not(self, action: str) -> str | None:
        for permission in NEEDS[action]:
            reason = self.identity.why_not(permission)
            if reason is not None:
                return reason
        if action != "add" and self.selected() is None:
            return "no file selected"
        return None

    def on_data_table_row_highlighted(self) -> None:
        self.refresh_bindings()

    # --- loading ----------------------------------------------------------------------

    def action_reload(self) -> None:
        self.load()

    @tab_work(exclusive=True, group="files-load")
    async def load(self) -> None:
        note = self.query_one("#files-note", Static)
        try:
            rows = await fetch(self, "file.list", {"client_id": self.client_id})
        except ClientError as err:
            note.update(f"Files: {err.message}")
            return
        self.files = {str(f["id"]): f for f in rows}
        self.loaded = True
        self.show()

    def show(self) -> None:
        table = self.query_one("#files-table", DataTable)
        kept = table.cursor_row
        table.clear()
        widths = [width for _, _, width in COLUMNS]
        for key, f in self.files.items():
            cells = (f.get("name") or "—", f["content_type"], size(f["size_bytes"]), f["virus_scan_status"],
                     when(str(f["created_at"]))[:16])
            table.add_row(*(fit(str(value), width) for value, width in zip(cells, widths)), key=key)
        if table.row_count:
            table.move_cursor(row=min(kept, table.row_count - 1))
        masked = "" if self.identity.can("phi:read") else " · names hidden (no phi:read)"
        self.query_one("#files-note", Static).update(f"{len(self.files)} files, newest first{masked}")
        self.refresh_bindings()

    # --- add ----------------------------------------------------------------------------

    def action_add(self) -> None:
        if self.refused("add"):
            return
        self.app.push_screen(FormScreen(
            "Add a file", "Sent to the daemon in pieces and stored encrypted with the client's key.",
            ADD_FIELDS, submit="Add", send=self._send_add))

    async def _send_add(self, values: dict) -> str | None:
        """The add form's `send`: a path that is no readable file is refused here, before
        anything is sent; the daemon's refusal (type, size) is shown in its words."""
        path, problem = readable_file(values["path"])
        if path is None:
            return problem
        kind = values.get("content_type") or guess_type(path)
        try:
            added = await upload(AppCaller(self.app), self.client_id, path, content_type=kind,
                                 description=values.get("description") or None)
        except ClientError as err:
            return f"Refused: {err.message}"
        except OSError as err:
            return f"path: could not read it ({err.strerror or type(err).__name__})"
        scan = added["virus_scan_status"]
        self.notify(f"Added ({size(added['size_bytes'])}, {added['content_type']}); virus scan: {scan}.")
        self.load()
        return None

    # --- save ---------------------------------------------------------------------------

    def action_save(self) -> None:
        if self.refused("save"):
            return
        record = self.selected()
        # The name (shown in the list already) as the starting point; only its last part,
        # so a name can never point the save at another folder.
        start = Path(record["name"]).name if record.get("name") else ""
        self.app.push_screen(FormScreen(
            "Save the file to a path", "Written whole or not at all: to a temporary file beside it, renamed "
            "in once every piece has arrived and matched the stored file's hash.",
            SAVE_FIELDS, submit="Save", values={"path": start},
            send=lambda values: self._send_save(str(record["id"]), values)))

    async def _send_save(self, file_id: str, values: dict) -> str | None:
        """The save form's `send` (it runs in the form's worker, so it may wait for the
        confirm dialog): a file already at the path is replaced only on an explicit yes."""
        out, problem = writable_target(values["path"])
        if out is None:
            return problem
        if out.exists():
            replace = await self.app.push_screen_wait(ConfirmScreen(
                "Replace the file there?", "A file is already at that path. It will be replaced by this "
                "client's file, once the whole file has arrived.", yes="Replace"))
            if not replace:
                return "path: a file is already there (not replaced); give another path or confirm"
        try:
            got = await download(AppCaller(self.app), file_id, out)
        except ClientError as err:
            return f"Refused: {err.message}"
        except StrongroomError as err:
            return f"Not saved: {err}"
        except OSError as err:
            return f"path: could not write there ({err.strerror or type(err).__name__})"
        self.notify(f"Saved ({size(got['size'])}).")
        return None

    # --- remove -------------------------------------------------------------------------

    def action_remove(self) -> None:
        if self.refused("remove"):
            return
        record = self.selected()

        def answered(yes: bool | None) -> None:
            if yes:
                self.remove_file(str(record["id"]))
        self.app.push_screen(ConfirmScreen(
            "Remove this file?", f"The selected file ({size(record['size_bytes'])}, {record['content_type']}) is "
            "removed: its record tombstoned and its stored content deleted. This cannot be undone.",
            yes="Remove"), answered)

    @tab_work(group="files-change")
    async def remove_file(self, file_id: str) -> None:
        await ask(self, "file.remove", {"file_id": file_id}, failing="Could not remove", notice_seconds=10)
        self.notify("Removed.")
        self.load()

    # --- copy ---------------------------------------------------------------------------

    def action_copy_id(self) -> None:
        """The selected file's id, for `strongroom files get|remove` in a terminal."""
        if self.refused("copy_id"):
            return
        file_id = str(self.selected()["id"])
        self.app.copy_to_clipboard(file_id)
        self.notify(f"Copied id {file_id}")
