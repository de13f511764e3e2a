"""Fixtures of the engine tests: the fake presets, registered for one test, and tiny synthetic
datasets written once per session."""

from __future__ import annotations

import pytest

from tests.engine._engine_fakes import fake_presets, write_datasets


@pytest.fixture(scope="session")
def fake_data(tmp_path_factory) -> dict[str, str]:
    """``{"instance": folder, "dense": folder}``: 12 training and 4 validation images of 32 px."""
    return write_datasets(tmp_path_factory.mktemp("fake-data"))


@pytest.fixture
def fake_models():
    """``fake_instance`` and ``fake_dense`` in the model registry for the duration of a test."""
    with fake_presets():
        yield
