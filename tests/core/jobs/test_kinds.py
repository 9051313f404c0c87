"""One table describes every job kind: its typed params, how it may be started, its audit action."""
import uuid

import pytest

from strongroom.core.errors import NotFoundError, NotImplementedYetError, ValidationError
from strongroom.core.jobs import kinds
from strongroom.core.jobs.kinds import KINDS, check_params


@pytest.mark.parametrize("name", kinds.runnable())
def test_every_runnable_kind_names_a_module_with_a_run_function(name):
    assert callable(KINDS[name].function())


def test_every_kind_of_this_release_runs_and_a_planned_one_would_say_so():
    assert kinds.planned() == () and "sync" in kinds.runnable()
    later = kinds.JobKind("later", kinds.Params, kinds.R.SyncResult, "Not in this release.", "SYNC", None,
                           progress_unit="peers")
    with pytest.raises(NotImplementedYetError):
        later.function()


def test_every_kind_declares_the_one_unit_its_progress_counts():
    """The console shows a run's count with its unit ("12,400 / 100,000 rows"); the kind
    declares it, `job.kind.list` publishes it and a run's record carries it."""
    units = {name: k.progress_unit for name, k in KINDS.items()}
    assert units["backup"] == units["verify"] == "bytes" and units["restore"] == "records"
    assert units["export"] == "rows" and units["integrity"] == "checks" and units["prune"] == "snapshots"
    assert all(unit and unit.isalpha() and unit.islower() for unit in units.values())
    assert all(k.describe()["progress_unit"] == k.progress_unit for k in KINDS.values())


def test_an_unknown_kind_is_not_found_without_repeating_the_name():
    with pytest.raises(NotFoundError) as caught:
        kinds.kind("jane.doe@example.org")
    assert "jane" not in str(caught.value) and "backup" in str(caught.value)


def test_kinds_needing_a_person_are_never_schedulable():
    assert set(kinds.on_request_only()) == {"restore", "export"}
    assert not set(kinds.on_request_only()) & set(kinds.schedulable_kinds())


def test_only_backup_repository_kinds_run_once_per_configuration():
    assert kinds.per_configuration() == {"backup", "verify", "prune", "restore_drill"}


@pytest.mark.parametrize("spelled, meaning", [
    (True, True), ("true", True), ("1", True), ("yes", True), ("on", True), ("TRUE", True),
    (False, False), ("false", False), ("0", False), ("no", False), ("", False), (None, False),
])
def test_flags_take_the_spellings_of_json_and_of_a_command_line(spelled, meaning):
    assert check_params("verify", {"read_data": spelled})["read_data"] is meaning


@pytest.mark.parametrize("spelled", ["maybe", 2, [], {}])
def test_anything_else_is_not_a_flag(spelled):
    with pytest.raises(ValidationError, match="verify params: read_data"):
        check_params("verify", {"read_data": spelled})


def test_defaults_are_filled_in_and_values_made_json_ready():
    snapshot = uuid.uuid4()
    assert check_params("verify", {"snapshot_id": str(snapshot)}) == {
        "configuration": None, "snapshot_id": str(snapshot), "read_data": False}


@pytest.mark.parametrize("name, params, field", [
    ("restore", {"dest": "sqlite:////tmp/x.db"}, "snapshot_id"),
    ("restore", {"snapshot_id": "nope", "dest": "sqlite:////tmp/x.db"}, "snapshot_id"),
    ("backup", {"configuration": "Has Spaces"}, "configuration"),
    ("retention", {"horizon_days": 99999}, "horizon_days"),
    ("key_rotation", {"client_ids": ["x"]}, "client_ids[0]"),
    ("export", {"tables": ["clients"], "filters": {"color": "red"}}, "filters"),
    ("export", {"tables": ["x" * 70]}, "tables"),
])
def test_bad_params_are_refused_naming_the_field(name, params, field):
    with pytest.raises(ValidationError) as caught:
        check_params(name, params)
    assert f"{name} params: {field}" in str(caught.value)


@pytest.mark.parametrize("params", [
    {"jane.doe@example.org": 1},
    {"tables": ["clients"], "fields": {"jane.doe@example.org": [{"a": 1}]}},
    {"tables": ["clients"], "filters": {"since": "123-45-6789" * 20}},
    {"tables": {"jane.doe@example.org": 1}},
])
def test_a_refusal_never_repeats_what_was_sent(params):
    with pytest.raises(ValidationError) as caught:
        check_params("export", params)
    message = str(caught.value)
    assert "jane" not in message and "123-45" not in message


def test_a_parameter_the_runner_adds_cannot_be_sent():
    with pytest.raises(ValidationError, match="not a known parameter"):
        check_params("backup", {"actor": "user:someone-else"})


def test_a_backup_cannot_be_pointed_at_a_target_outside_the_configuration():
    with pytest.raises(ValidationError, match="not a known parameter"):
        check_params("backup", {"target": "s3://elsewhere/stolen"})


def test_every_kind_publishes_a_params_schema_for_forms():
    for kind in KINDS.values():
        described = kind.describe()
        assert described["params"]["type"] == "object" and described["summary"]
