"""practice.encryption.*: the practice's encryption level (core/encryption_levels.py)."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from strongroom.core.protocol.models.practice import PracticeArgs
from strongroom.core.protocol.models.base import Result


class EncryptionSetArgs(PracticeArgs):
    # A plain string, not a Literal: core/encryption_levels.py words the refusal of `none`
    # and of an unknown name itself, the same for the CLI and the daemon.
    level: str = Field(min_length=1, max_length=16, description="standard, high or military (none is refused)")


class EncryptionRequirement(Result):
    level: str                  # the lowest level that asks for it
    name: str
    met: bool
    evidence: dict[str, Any]    # what was checked, by name; never a key (keys differ by requirement)
    fix: str                    # what would meet it ("" when there is nothing to do)


class LevelCheck(Result):
    """A level that may be put in force, checked now against the running configuration."""
    level: str
    met: bool
    requirements: list[EncryptionRequirement]   # its own and those of every level below it


class EncryptionStatus(Result):
    level: str                  # the level in force
    met: bool                   # every requirement of it holds now
    requirements: list[EncryptionRequirement]
    levels: list[str]           # the levels that may be put in force, weakest first
    # Every level, checked now: what choosing one would ask for, before anyone tries.
    offered: list[LevelCheck]
