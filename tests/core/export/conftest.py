"""What the export tests share: the published XML schema and xmllint to validate against it.

CI (.ci/run) installs xmllint and sets STRONGROOM_TEST_REQUIRE_PG: there a missing tool
fails the tests that need it instead of skipping them."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "export.xsd"
XMLLINT = shutil.which("xmllint")

needs_xmllint = pytest.mark.skipif(
    XMLLINT is None and not os.environ.get("STRONGROOM_TEST_REQUIRE_PG"),
    reason="xmllint (libxml2-utils) is not installed and this is not a CI run (.ci/run installs it)")


def xmllint(path: Path) -> subprocess.CompletedProcess:
    """xmllint's verdict on one XML file against docs/export.xsd."""
    assert XMLLINT, "xmllint (libxml2-utils) is missing: .ci/run installs it"
    return subprocess.run([XMLLINT, "--noout", "--schema", str(SCHEMA), str(path)],
                          capture_output=True, text=True, timeout=60)
