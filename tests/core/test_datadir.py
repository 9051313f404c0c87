"""core/datadir.py: opening a data directory stays cheap (every CLI process and file
child opens one); only `init` migrates, so only it loads alembic."""
import subprocess
import sys


def test_opening_a_data_directory_does_not_import_alembic():
    code = "import sys, strongroom.core.datadir; print('alembic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
