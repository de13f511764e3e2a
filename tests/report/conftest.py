"""The report tests read stores the study fakes fill: ``studyfake`` and ``reportfake`` import by
module name, as in tests/study (spawned workers import them so too)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # reportfake
sys.path.insert(0, str(Path(__file__).parents[1] / "study"))  # studyfake
