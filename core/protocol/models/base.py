"""The two base classes: arguments refuse unknown keys and never echo input in errors;
results refuse keys their model does not name.

Both defer building their validators to a model's first use (`defer_build`): a daemon
defines some two hundred models and a run uses a few, and building them all at import
was about 0.2 s of every daemon's and CLI command's start."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Args(BaseModel):
    """A command's arguments: unknown keys are refused, and an error never repeats the value."""
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, defer_build=True)


class NoArgs(Args):
    """A command that takes no arguments."""


class Result(BaseModel):
    """A command's answer (or one item of it): exactly these keys."""
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, defer_build=True)
