"""Suite-wide settings: one torch thread per xdist worker (two workers share two cores), a headless
matplotlib, a private cache folder so tests never touch the user's cache, and ``tiny_spec``: the small
study spec the study and report tests share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LOSSLAB_CACHE", str(tmp_path_factory.getbasetemp() / "losslab-cache"))


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
