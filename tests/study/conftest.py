"""The study tests import their fakes by module name (``studyfake``, ``reportfake``), also in spawned
workers; the shared ``tiny_spec`` fixture lives in ``tests/conftest.py``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # studyfake, also for spawned workers
sys.path.insert(0, str(Path(__file__).parents[1] / "report"))  # reportfake
