"""What the export form sends (console/modals/export_form.py request_from and
save_request_from): the Files switch reaches export.run only with the ZIP, and a
saved configuration never keeps it (as the CLI's --with-files)."""
from __future__ import annotations

from strongroom.console.modals.export_form import request_from, save_request_from

FORM = {"tables": ["client_files"], "fields": ["client_files.id", "client_files.file_name"], "format": "csv",
        "masking": "full", "encrypt": True, "password": "correct horse battery", "bom": False, "files": True,
        "range": "", "since": "", "until": "", "client_id": "", "practice_id": "", "statuses": {},
        "save_as": "", "schedule": "", "retention_days": "", "password_credential": ""}


def test_files_go_with_the_zip():
    assert request_from(FORM)["files"] is True
    assert request_from({**FORM, "encrypt": False}).get("files") is None


def test_a_saved_configuration_does_not_keep_files():
    saved = save_request_from({**FORM, "save_as": "with-content"})
    assert "files" not in saved and saved["encrypt"] is True and "password" not in saved
