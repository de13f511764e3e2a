"""Fixtures of the study tests: a tiny two-loss, two-seed spec over a dataset folder in tmp_path."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # studyfake, also for spawned workers


@pytest.fixture
def tiny_spec(tmp_path: Path) -> dict[str, Any]:
    """Two configurations (BCE, Dice) x two seeds, 3 steps each, fake data folder."""
    data = tmp_path / "data"
    data.mkdir()
    return {
        "name": "tiny",
        "description": "two tiny configurations",
        "dataset": {"path": str(data)},
        "model": "yolact_tiny",
        "config": {"max_iter": 3, "batch_size": 2},
        "grid": {"mask_loss": {"BCE": "bce", "Dice": "dice"}},
        "seeds": 2,
        "baseline": "BCE",
    }
