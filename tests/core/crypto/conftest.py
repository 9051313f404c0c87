"""Fixtures for key tests; helpers live in crypto_helpers.py beside this file."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
