"""The wheel: every module importable from a non-editable install, nothing installed as
a top-level `core`, `daemon` or `console` package."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_every_module_under_strongroom_only(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(REPO)], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("strongroom-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("strongroom-")}
    assert tops == {"strongroom"}
    sources = {p.relative_to(REPO).with_suffix("") for root in ("core", "daemon", "console")
               for p in (REPO / root).rglob("*.py")}
    packaged = {Path(n).with_suffix("") for n in names if n.endswith(".py")}
    expected = {Path("strongroom") / s for s in sources}
    assert expected <= packaged, f"missing from the wheel: {sorted(map(str, expected - packaged))}"
    assert "strongroom/core/db/migrations/script.py.mako" in names
    for tcss in (REPO / "console").glob("*.tcss"):
        assert f"strongroom/console/{tcss.name}" in names, f"{tcss.name} missing: the console has no styles"

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                    str(wheel)], check=True)
    modules = sorted(".".join(("strongroom",) + s.parts).removesuffix(".__init__") for s in sources
                     if s.parts[-1] != "env" or "migrations" not in s.parts)
    modules = [m for m in modules if ".migrations.versions." not in m
               and not m.endswith((".migrations.env", ".__main__"))]
    script = ("import importlib, strongroom.core as c, sys\n"
              f"assert c.__file__.startswith({str(site)!r}), c.__file__\n"
              f"for m in {modules!r}: importlib.import_module(m)\n"
              "from strongroom.core.db.migrate import head_revision; print(head_revision())\n")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); " +
                          "exec(" + repr(script) + ")"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
