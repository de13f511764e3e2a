"""Suite-wide settings: one torch thread per xdist worker (two workers share two cores), a headless
matplotlib, and a private cache folder so tests never touch the user's cache."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LOSSLAB_CACHE", str(tmp_path_factory.getbasetemp() / "losslab-cache"))
