"""Map the repo folders core/, daemon/ and console/ onto the strongroom.* namespace.

setuptools needs every subpackage listed when package-dir renames folders; computing the
list here means a new subpackage can never be silently left out of a wheel.
"""
from pathlib import Path

from setuptools import Extension, setup

ROOTS = {"core": "strongroom.core", "daemon": "strongroom.daemon", "console": "strongroom.console"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder, name in ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder)
            pkg = ".".join([name, *rel.parts]) if rel.parts else name
            packages.append(pkg)
            package_dir[pkg] = str(init.parent)
    return packages, package_dir


# AES-256-GCM over many small values in one call (core/crypto/_gcm.c), for bulk reads.
# Optional: without a C compiler or OpenSSL's headers (Debian: libssl-dev) the build
# goes on without it and core.crypto.bulk opens values through `cryptography` instead
# (same results, slower; CI fails without it: tests/core/crypto/test_bulk.py).
GCM = Extension("strongroom.core.crypto._gcm", ["core/crypto/_gcm.c"], libraries=["crypto"], optional=True)
# Dates and times printed as ISO text a column at a time (core/repository/_text.c), for
# bulk reads; optional the same way (records.py prints through Python without it).
TEXT = Extension("strongroom.core.repository._text", ["core/repository/_text.c"],
                 depends=["core/repository/_buffer.h", "core/repository/_iso.h"], optional=True)
# Row checksums and sync's field hashes (core/repository/_canon.c): SHA-256 from OpenSSL
# as for _gcm; optional the same way (changes.py and sync/tables.py hash in Python).
CANON = Extension("strongroom.core.repository._canon", ["core/repository/_canon.c"], libraries=["crypto"],
                  depends=["core/repository/_buffer.h", "core/repository/_iso.h"], optional=True)

# UUIDs and UTC datetimes to and from SQLite's text in sync's bulk reads and writes
# (core/db/_rows.c); optional the same way (core/db/rawrows.py converts in Python).
ROWS = Extension("strongroom.core.db._rows", ["core/db/_rows.c"], depends=["core/repository/_iso.h"], optional=True)

PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR, ext_modules=[GCM, TEXT, CANON, ROWS])
