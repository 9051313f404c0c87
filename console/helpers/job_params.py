"""A job kind's params as a form, built from the JSON schema the daemon publishes for it
(`job.kind.list`, from the kind's params model in core.jobs.kinds), so a new param of a
job reaches the console's "run with options" form without a line of console code.

Each param is one text field labelled with its title (optional unless the schema
requires it) and a placeholder saying what it does and its default; what the person
types is turned into the param's type here (yes/no, whole numbers, comma lists) and
anything else is left to the daemon, which checks the params against the same model and
refuses by field name. Params only the scheduler sets are not offered."""
from __future__ import annotations

from typing import Any

# Set by the daemon's scheduler or sealed by another form, never typed by a person.
NOT_TYPED = frozenset({"scheduled", "password_sealed"})
YES, NO = frozenset({"yes", "y", "true", "1"}), frozenset({"no", "n", "false", "0"})


def kinds_of(prop: dict) -> set[str]:
    """The JSON types a param takes, `null` aside (an optional param is anyOf [T, null])."""
    if "type" in prop:
        return {prop["type"]} - {"null"}
    return {t for option in prop.get("anyOf", []) for t in kinds_of(option)}


def _hint(prop: dict) -> str:
    types = kinds_of(prop)
    default = prop.get("default")
    if "boolean" in types:
        shape = f"yes or no (default {'yes' if default else 'no'})"
    elif "array" in types:
        choices = prop.get("items", {}).get("enum")
        shape = "comma-separated" + (f": {', '.join(choices)}" if choices else "")
    elif "integer" in types:
        bounds = [f"{word} {prop[key]}" for key, word in (("minimum", "from"), ("maximum", "to")) if key in prop]
        shape = " ".join(["whole number", *bounds]) + (f" (default {default})" if default is not None else "")
    else:
        shape = ""
    words = (prop.get("description") or "").rstrip(".")
    return " · ".join(part for part in (shape, words) if part)


def form_fields(schema: dict) -> tuple[tuple[str, str, str], ...]:
    """(field id, label, placeholder) for each param a person may give, in the model's order."""
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        if name in NOT_TYPED:
            continue
        title = prop.get("title") or name
        fields.append((name, title if name in required else f"{title} (optional)", _hint(prop)))
    return tuple(fields)


def params_from(schema: dict, values: dict[str, str]) -> dict[str, Any]:
    """The params for what the form holds: empty fields left out (their defaults apply),
    the rest in their param's type. A value that cannot be one is a ValueError naming
    the field (the form shows it under that field), never repeating what was typed."""
    params: dict[str, Any] = {}
    properties = schema.get("properties") or {}
    for name, text in values.items():
        text = text.strip()
        if not text or name not in properties:
            continue
        types = kinds_of(properties[name])
        if "boolean" in types:
            if text.lower() not in YES | NO:
                raise ValueError(f"{name}: must be yes or no")
            params[name] = text.lower() in YES
        elif "integer" in types:
            try:
                params[name] = int(text)
            except ValueError:
                raise ValueError(f"{name}: must be a whole number") from None
        elif "array" in types:
            params[name] = [item.strip() for item in text.split(",") if item.strip()]
        else:
            params[name] = text
    return params
