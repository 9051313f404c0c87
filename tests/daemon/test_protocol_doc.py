"""docs/protocol.md is what the registry says, never a hand-kept copy that drifts."""
from pathlib import Path

from strongroom.daemon.commands import REGISTRY
from strongroom.daemon.protocol_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_the_committed_protocol_document_is_the_one_the_code_writes():
    assert DOC.read_text() == render(), \
        "regenerate: python -m strongroom.daemon.protocol_doc > docs/protocol.md"


def test_every_command_and_every_error_code_is_described():
    text = render()
    for name in REGISTRY:
        assert f"### `{name}`" in text
    for code in ("bad_request", "unauthenticated", "forbidden", "not_found", "conflict", "rate_limited",
                 "not_implemented", "internal"):
        assert f"| `{code}` |" in text


def test_every_result_model_and_every_old_name_is_described():
    from strongroom.daemon.commands import ALIASES

    text = render()
    for name, command in REGISTRY.items():
        assert f"### `{name}`" in text and "Result: `" in text.split(f"### `{name}`", 1)[1].split("### ", 1)[0]
    for old, new in ALIASES.items():
        assert f"| `{old}` | `{new}` |" in text
    assert "backup.run" not in text          # documented once, never existed
    assert "### JobRun" in text and "| `duration_seconds` |" in text
