"""A client's files (practice screen, `f`) against a real strongroomd on both engines: the
client chosen in the picker, a small file added from a local path (listed), saved to
another path byte for byte (an existing file replaced only after the confirm dialog's
yes), removed after the confirm dialog (gone from the list); a missing path or a folder
is refused under the field with nothing sent. A practitioner may add but not remove (the
key disabled with the reason); the front desk, who may not read files, finds `f` disabled."""
from __future__ import annotations

import pytest

from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.files import FilesScreen, readable_file, writable_target
from strongroom.console.modals.form import FormScreen
from strongroom.console.modals.practice import PracticeScreen
from strongroom.core.auth.users import create_user
from strongroom.core.db.models import Role
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from textual.widgets import DataTable, Input, Static

from tests.console.tui.conftest import FAST_HEALTH, drive, in_thread, showing, wait_for
from tests.console.tui.live import at_main_screen, open_for_client, open_practice
from tests.daemon.conftest import PASSWORD, data_transaction, login, make_data_dir, running_daemon

# Synthetic people and content, nobody's data.
CLIENT = {"first_name": "Orrin", "last_name": "Quillfeather", "date_of_birth": "1981-02-03"}
CONTENT = b"synthetic referral letter, line one\nline two\n"


@pytest.fixture
def files_daemon(tmp_path, db_url):
    """A daemon over one client (`.client_id`) and a front-desk account `desk` (STAFF: no
    client files at all)."""
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)
    with data_transaction(data_dir) as (ctx, conn):
        ids: list = []
        insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), [CLIENT], created=ids)
        create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "desk", PASSWORD, Role.STAFF, actor="test")
    with running_daemon(data_dir, tmp_path) as proc:
        proc.client_id = str(ids[0])
        yield proc


def test_a_path_that_is_no_readable_file_or_no_place_to_write_is_refused_by_name(tmp_path):
    assert readable_file(str(tmp_path / "absent.txt")) == (None, "path: no file there")
    assert readable_file(str(tmp_path))[1].startswith("path: that is a folder")
    there = tmp_path / "a.txt"
    there.write_bytes(b"x")
    assert readable_file(str(there)) == (there, None)
    assert writable_target(str(tmp_path / "no-such-folder" / "a.txt")) == (None, "path: its folder does not exist")
    assert writable_target(str(tmp_path))[1].startswith("path: that is a folder")
    assert writable_target(str(there)) == (there, None)       # whether to replace it is asked apart


async def _open_files(pilot, app) -> FilesScreen:
    return await open_for_client(pilot, app, "f", FilesScreen, "files screen")


def _rows(screen) -> list[list[str]]:
    table = screen.query_one("#files-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def _form(pilot, app) -> FormScreen:
    await wait_for(pilot, showing(app, FormScreen), what="a form")
    return app.screen


async def _submit(pilot, app, values: dict) -> FormScreen:
    form = await _form(pilot, app)
    for field, value in values.items():
        form.query_one(f"#{field}", Input).value = value
    await pilot.press("ctrl+s")
    return form


async def _refusal(pilot, form, field: str = "path") -> str:
    line = form.query_one(f"#{field}-error", Static)
    await wait_for(pilot, lambda: str(line.render()).strip(), what=f"the reason under {field}")
    return str(line.render())


def test_add_save_and_remove_a_file_from_the_console(files_daemon, tmp_path):
    source = tmp_path / "referral letter.txt"
    source.write_bytes(CONTENT)
    drive(lambda: _round_trip(files_daemon, tmp_path, source), timeout=150)
    assert files_daemon.call("file.list", {"client_id": files_daemon.client_id}) == []
    deleted = files_daemon.call("audit.tail", {"table_name": "client_files", "action": "DELETE"})
    assert len(deleted) == 1


async def _round_trip(daemon, tmp_path, source):
    async with at_main_screen(daemon) as (app, pilot):
        screen = await _open_files(pilot, app)
        assert screen.client_id == daemon.client_id and _rows(screen) == []

        # A path with no file, then a folder: refused under the field, nothing sent.
        await pilot.press("a")
        form = await _submit(pilot, app, {"path": str(tmp_path / "absent.txt")})
        assert "no file there" in await _refusal(pilot, form)
        assert form.query_one("#path", Input).has_class("-refused")
        form.query_one("#path", Input).value = str(tmp_path)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "folder" in str(form.query_one("#path-error", Static).render()),
                       what="a folder refused")
        assert isinstance(app.screen, FormScreen)
        assert await in_thread(daemon.call, "file.list", {"client_id": daemon.client_id}) == []

        # The real file: streamed, listed with its guessed type and size.
        form.query_one("#path", Input).value = str(source)
        form.query_one("#description", Input).value = "from Dr Q"
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, FilesScreen), what="back on the files")
        await wait_for(pilot, lambda: len(screen.files) == 1, what="the file listed")
        (row,) = _rows(screen)
        (listed,) = await in_thread(daemon.call, "file.list", {"client_id": daemon.client_id})
        assert row[:4] == ["referral letter.txt", "text/plain", f"{len(CONTENT)} B", listed["virus_scan_status"]]
        assert row[4] == str(listed["created_at"]).replace("T", " ")[:16]
        assert listed["description"] == "from Dr Q" and listed["size_bytes"] == len(CONTENT)
        assert str(listed["id"]) in screen.files

        # Saved elsewhere, byte for byte; the form starts from the file's name.
        await pilot.press("s")
        form = await _form(pilot, app)
        assert form.query_one("#path", Input).value == "referral letter.txt"
        target = tmp_path / "out" / "copy.txt"
        target.parent.mkdir()
        form.query_one("#path", Input).value = str(target)
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, FilesScreen), what="saved")
        assert target.read_bytes() == CONTENT

        # A file already there is kept on "no", replaced on "yes"; nothing is left beside it.
        target.write_bytes(b"mine")
        await pilot.press("s")
        form = await _submit(pilot, app, {"path": str(target)})
        await wait_for(pilot, showing(app, ConfirmScreen), what="asked before replacing")
        await pilot.press("n")
        assert "not replaced" in await _refusal(pilot, form)
        assert target.read_bytes() == b"mine"
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, ConfirmScreen), what="asked again")
        await pilot.press("y")
        await wait_for(pilot, showing(app, FilesScreen), what="replaced")
        assert target.read_bytes() == CONTENT
        assert sorted(p.name for p in target.parent.iterdir()) == ["copy.txt"]

        # Removed after the confirm dialog: gone from the list.
        await pilot.press("d")
        await wait_for(pilot, showing(app, ConfirmScreen), what="asked before removing")
        assert "referral" not in str(app.screen.query_one("#consequence", Static).render())
        await pilot.press("y")
        await wait_for(pilot, showing(app, FilesScreen), what="back on the files")
        await wait_for(pilot, lambda: not screen.files and _rows(screen) == [], what="the file gone")
        assert screen.why_not("save") == "no file selected"
        # Every notice said what happened without the file's name or a byte of its content.
        said = [m.message for m in app.messages]
        assert any(m.startswith("Added") for m in said) and "Saved (45 B)." in said and "Removed." in said
        assert not [m for m in said if "referral" in m or "synthetic" in m]
        await pilot.press("escape")
        await wait_for(pilot, showing(app, PracticeScreen), what="back on the practice screen")


def test_a_practitioner_adds_but_may_not_remove_and_the_front_desk_may_not_open_files(files_daemon, tmp_path):
    source = tmp_path / "scan.txt"
    source.write_bytes(CONTENT)
    drive(lambda: _practitioner(files_daemon, source), timeout=120)
    assert len(files_daemon.call("file.list", {"client_id": files_daemon.client_id})) == 1
    drive(lambda: _desk(files_daemon), timeout=90)


async def _practitioner(daemon, source):
    token = await in_thread(login, daemon, "clinician")
    async with at_main_screen(daemon, token=token) as (app, pilot):
        screen = await _open_files(pilot, app)
        assert screen.active_bindings["a"].enabled is True
        await pilot.press("a")
        await _submit(pilot, app, {"path": str(source)})
        await wait_for(pilot, showing(app, FilesScreen), what="added")
        await wait_for(pilot, lambda: len(screen.files) == 1, what="the file listed")
        assert screen.active_bindings["s"].enabled is True
        assert screen.active_bindings["d"].enabled is False
        assert screen.why_not("remove") == "user:clinician lacks table:client_files:delete"
        await pilot.press("d")
        assert isinstance(app.screen, FilesScreen)                       # no confirm dialog


async def _desk(daemon):
    token = await in_thread(login, daemon, "desk")
    async with at_main_screen(daemon, token=token) as (app, pilot):
        practice = await open_practice(pilot, app)
        assert practice.active_bindings["f"].enabled is False
        assert practice.why_not("files") == "user:desk lacks table:client_files:read"
        await pilot.press("f")
        assert isinstance(app.screen, PracticeScreen)                    # no picker
