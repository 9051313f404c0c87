"""The two base classes: arguments refuse unknown keys and never echo input in errors;
results refuse keys their model does not name."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Args(BaseModel):
    """A command's arguments: unknown keys are refused, and an error never repeats the value."""
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class NoArgs(Args):
    """A command that takes no arguments."""


class Result(BaseModel):
    """A command's answer (or one item of it): exactly these keys."""
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
