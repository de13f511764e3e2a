"""``execute_run``, the one function every executor calls per run: what it keeps out of a study's log."""

from __future__ import annotations

import warnings

import pytest
from typer.testing import CliRunner

from losslab.cli import app
from losslab.losses import LossEquivalenceWarning, create_loss
from losslab.study.executors import execute_run
from losslab.study.spec import load_study


def _run_building_huber(config, run_dir, progress=False):
    create_loss("huber")  # the same loss as 0.5*mse: warns outside a study
    return {"metrics": {"segm": {"AP": 1.0}}}


def test_a_run_does_not_repeat_the_studys_loss_equivalence_notes(tmp_path):
    """The study states each equivalence once, in its notes (`study.spec`); each run's worker would
    otherwise print it again into the study's log, once per run of that loss."""
    with pytest.warns(LossEquivalenceWarning, match="0.5\\*mse"):
        create_loss("huber")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = execute_run(_run_building_huber, {}, tmp_path / "run")
        warnings.warn("a warning after the run still shows", UserWarning, stacklevel=1)
    assert outcome["status"] == "done", outcome.get("error")
    assert [str(w.message) for w in caught] == ["a warning after the run still shows"]


def test_study_run_states_each_equivalence_once_as_a_note():
    """`quick` has a Huber configuration: its note says it is 0.5*mse, and `study run` does not warn
    again while it checks and plans the runs (it printed at the top of every `make study`)."""
    study = load_study("quick")
    assert any("'huber' is the same loss as '0.5*mse'" in note for note in study.warnings + study.notes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["study", "run", "quick", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if issubclass(w.category, LossEquivalenceWarning)]
