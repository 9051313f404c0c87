"""Every registered command is typed and named one way (core/protocol/names.py), and the
old names keep working as aliases for one release."""
from __future__ import annotations

import importlib
import typing

import pytest
from pydantic import BaseModel

from strongroom.core.protocol.models.base import Args, Result
from strongroom.core.protocol.names import RENAMED, SINGLE_WORD, VERBS, naming_problem
from strongroom.daemon.commands import ALIASES, REGISTRY, command, lookup

importlib.import_module("strongroom.daemon.main")     # registers every command module


def _models_in(annotation) -> list[type]:
    """The model classes a result annotation is made of (a model, list[...] of one, or a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_command_declares_its_models_and_keeps_the_naming_rule(name):
    cmd = REGISTRY[name]
    assert naming_problem(name) is None, naming_problem(name)
    assert isinstance(cmd.args, type) and issubclass(cmd.args, Args)
    models = _models_in(cmd.result)
    assert models and all(issubclass(m, Result) for m in models), f"{name}: result must be Result model(s)"
    assert cmd.result_adapter.json_schema()          # describable in docs/protocol.md
    # models live where the console may import them, never in the daemon
    assert all(m.__module__.startswith("strongroom.core.protocol.models") for m in (cmd.args, *models))


def test_the_naming_rule_refuses_plurals_unknown_verbs_and_bare_words():
    assert naming_problem("jobs.list") and naming_problem("job.frobnicate") and naming_problem("jobs")
    assert naming_problem("job.list") is None and naming_problem("sync.status.get") is None
    assert all(naming_problem(w) is None for w in SINGLE_WORD)
    assert "list" in VERBS and "kinds" not in VERBS


def test_a_command_that_breaks_the_rule_or_has_no_result_model_cannot_register():
    with pytest.raises(RuntimeError, match="verbs"):
        command("thing.frobnicate", permission=None, result=Result)
    with pytest.raises(RuntimeError, match="singular"):
        command("things.list", permission=None, result=Result)
    with pytest.raises(RuntimeError, match="result model"):
        command("thing.list", permission=None, result=typing.Any)
    assert "thing.list" not in REGISTRY


def test_every_old_name_is_an_alias_of_a_registered_command():
    assert ALIASES == RENAMED
    for old, new in RENAMED.items():
        assert old not in REGISTRY and new in REGISTRY
        assert lookup(old) is REGISTRY[new] and old in REGISTRY[new].aliases


def test_rate_classes_are_those_of_the_old_names():
    """`[auth] rate_limits` keys (`exports = 30`) keep applying after the renaming."""
    assert lookup("export.run").rate_class == lookup("exports.run").rate_class == "exports"
    assert lookup("export.list").rate_class == "exports"
    assert lookup("backup.list").rate_class == "backups" and lookup("backup.show").rate_class == "backup"
    assert lookup("file.add").rate_class == "files"
    assert lookup("file.chunk.add").rate_class is None and lookup("file.chunk.get").rate_class is None
    assert lookup("job.run").rate_class == "job"


def test_the_constants_the_protocol_writes_out_match_the_core():
    from strongroom.core import retention as core_retention
    from strongroom.core.jobs.retention import MAX_HORIZON_DAYS
    from strongroom.core.protocol.models import retention, sync
    from strongroom.core.sync import conflicts, peers, status

    assert retention.MAX_HORIZON_DAYS == MAX_HORIZON_DAYS
    assert retention.TABLES == core_retention.TABLES
    assert sync.PEER_NAME == peers.NAME.pattern
    assert sync.MAX_PAGE == status.MAX_PAGE == conflicts.MAX_PAGE
