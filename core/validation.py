"""Describing bad input without repeating it.

A value somebody typed may be PHI (an email in a table name, a client's name in a
username field), so a refusal names where the problem is and which rule it broke, never
the value. Pydantic's own messages are close but not safe: the location of an unknown
key *is* the key, a dict's location holds its keys, and some messages quote part of the
input. `describe` keeps only what the model itself declares.
"""
from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

MAX_DEPTH = 32

# Pydantic error types whose message may quote the input; replaced by our own wording.
_RULES = {
    "extra_forbidden": "is not a known parameter",
    "uuid_parsing": "must be a UUID",
    "uuid_type": "must be a UUID",
    "json_invalid": "must be valid JSON",
    "datetime_from_date_parsing": "must be an ISO date or datetime",
    "datetime_parsing": "must be an ISO datetime",
    "date_parsing": "must be an ISO date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "must be an ISO date (YYYY-MM-DD)",
    "enum": "is not one of the allowed values",
}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        for arg in typing.get_args(annotation):
            found += _models_in(arg)
    return found


def where(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The declared part of an error location: field names through nested models, list
    positions as [n]; it stops at the first part the model does not declare (a dict key,
    an unknown key, a union branch), which is the input's own text."""
    parts: list[str] = []
    candidates: list[type[BaseModel]] = [model]
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
            continue
        owner = next((m for m in candidates if part in m.model_fields), None)
        if owner is None:
            break
        parts.append(("." if parts else "") + part)
        candidates = _models_in(owner.model_fields[part].annotation)
    return "".join(parts)


def describe(exc: PydanticError, model: type[BaseModel], what: str) -> str:
    """One line naming every problem by field and rule, e.g.
    `job.run params: read_data: Input should be a valid boolean; (a key): is not a known parameter`."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = where(model, tuple(error["loc"]))
        rule = _RULES.get(error["type"], error["msg"])
        if error["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) if not field else ""
            field = f"{field}: a key" if field else "a key"
            rule = rule + (f" (known: {known})" if known else "")
        problems.append(f"{field or '(value)'}: {rule}")
    return f"{what}: " + "; ".join(dict.fromkeys(problems))


def has_lone_surrogate(value: Any) -> bool:
    """True when a string anywhere in a JSON value holds half a UTF-16 pair: JSON may
    spell one (`"\\ud800"`), but it is no text and no database or file can store it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply lists and objects nest in a JSON value, counted without recursion (so a
    hostile 100,000-level value costs a loop, not a RecursionError); stops counting
    once past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            if level > limit:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level) for child in children)
    return deepest
