"""`strongroom practice|staff|services` against a real daemon (both engines): show and
set the practice, add, list and change staff and services; bad input a clear error
naming the field (never the value), non-zero exit, nothing changed."""
import json

import pytest

from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import make_data_dir, running_daemon


@pytest.fixture
def practice_daemon(tmp_path, db_url, monkeypatch):
    data_dir = make_data_dir(tmp_path, db_url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with running_daemon(data_dir, tmp_path) as proc:
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
        yield proc


def cli(capsys, daemon, *args):
    return run(capsys, "--data-dir", daemon.data_dir, *args)


def test_practice_staff_and_services_from_the_command_line(practice_daemon, capsys):
    d = practice_daemon
    code, out, err = cli(capsys, d, "practice", "set", "--address", "4 Birch Close", "--tax-id", "TX-808")
    assert code == 0, err
    assert "4 Birch Close" in out and "TX-808" in out
    code, out, err = cli(capsys, d, "practice", "set", "--clear", "tax-id", "--json")
    assert code == 0 and json.loads(out)["tax_id"] is None, err

    code, out, err = cli(capsys, d, "staff", "add", "--first-name", "Ola", "--last-name", "Penn", "--role",
                         "PRACTITIONER", "--specialization", "CBT", "--specialization", "grief",
                         "--hours", "mon=09:00-12:00,13:00-17:00", "--hours", "fri=09:00-12:00",
                         "--hourly-rate-cents", "8500", "--json")
    assert code == 0, err
    staff = json.loads(out)
    assert staff["working_hours"] == {"fri": ["09:00-12:00"], "mon": ["09:00-12:00", "13:00-17:00"]}
    assert staff["specializations"] == ["CBT", "grief"] and staff["hourly_rate_cents"] == 8500
    code, out, err = cli(capsys, d, "staff", "set", staff["id"], "--inactive", "--clear", "hourly-rate-cents")
    assert code == 0 and "inactive" in out, err
    code, out, _ = cli(capsys, d, "staff", "list")
    assert code == 0 and out.strip() == "no staff"
    code, out, _ = cli(capsys, d, "staff", "list", "--all")
    assert code == 0 and "Penn" in out

    code, out, err = cli(capsys, d, "services", "add", "--name", "Assessment", "--category", "assessment",
                         "--duration-minutes", "90", "--price-cents", "18000", "--json")
    assert code == 0, err
    service = json.loads(out)
    code, out, err = cli(capsys, d, "services", "set", service["id"], "--price-cents", "19000")
    assert code == 0, err
    code, out, _ = cli(capsys, d, "services", "list", "--json")
    assert [s["price_cents"] for s in json.loads(out)["items"]] == [19000]


@pytest.mark.parametrize("args, field, value", [
    (("practice", "set", "--email", "zq-nobody"), "email", "zq-nobody"),
    (("staff", "add", "--first-name", "A", "--last-name", "B", "--role", "STAFF", "--hours", "mon=zq9-5"),
     "working_hours", "zq9-5"),
    (("staff", "add", "--first-name", "A", "--last-name", "B", "--role", "STAFF", "--hours", "zqmonday"),
     "--hours", "zqmonday"),
    (("staff", "add", "--first-name", "A", "--last-name", "B", "--role", "zqBOSS"), "role", "zqBOSS"),
    (("services", "add", "--name", "S", "--category", "c", "--duration-minutes", "50", "--price-cents", "zq12.5"),
     "price_cents", "zq12.5"),
])
def test_bad_input_is_refused_by_field_and_changes_nothing(practice_daemon, capsys, args, field, value):
    d = practice_daemon
    before = [cli(capsys, d, *show, "--json")[1] for show in (("practice", "show"), ("staff", "list", "--all"),
                                                             ("services", "list", "--all"))]
    code, out, err = cli(capsys, d, *args)
    assert code != 0 and field in err and value not in err + out
    after = [cli(capsys, d, *show, "--json")[1] for show in (("practice", "show"), ("staff", "list", "--all"),
                                                            ("services", "list", "--all"))]
    assert after == before
