"""Finished study runs keep their weights only: the runner slims each run as it finishes, and
`losslab study prune DIR` does it for an older study folder."""

from __future__ import annotations

import torch
from studyfake import fake_run
from typer.testing import CliRunner

from losslab.cli import app
from losslab.engine import checkpoint as ckpt
from losslab.study.runner import run_dir_of, run_study
from losslab.study.spec import parse_study


def _write_full_checkpoint(run_dir) -> None:
    state = {
        "model": {"w": torch.ones(1000)},
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(20000)}}, "param_groups": []},
        "iteration": 3,
        "config": {"train": {"model": "fake_instance"}, "model": {}},
    }
    last = run_dir / "checkpoints" / "last.pt"
    ckpt.save_checkpoint(last, state)
    ckpt.save_checkpoint(last, state)  # previous.pt too, as a run leaves it


def checkpointing_run(config, run_dir, progress=True):
    result = fake_run(config, run_dir, progress)
    _write_full_checkpoint(run_dir)
    return result


def _checkpoints(out, study):
    return [run_dir_of(out, r.run_id) / "checkpoints" for r in study.runs()]


def test_the_runner_slims_each_run_as_it_finishes(tmp_path, tiny_spec):
    study = parse_study(tiny_spec)
    out = tmp_path / "study"
    run_study(study, out, run_fn=checkpointing_run, progress=False)
    for folder in _checkpoints(out, study):
        assert sorted(p.name for p in folder.iterdir() if p.suffix == ".pt") == ["last.pt"]
        state = ckpt.load_checkpoint(folder / "last.pt")
        assert "optimizer" not in state and torch.equal(state["model"]["w"], torch.ones(1000))


def test_study_prune_slims_an_old_study(tmp_path, tiny_spec):
    study = parse_study(tiny_spec)
    out = tmp_path / "study"
    run_study(study, out, run_fn=checkpointing_run, progress=False)
    for folder in _checkpoints(out, study):  # as an older losslab left them
        _write_full_checkpoint(folder.parent)
    before = sum(p.stat().st_size for f in _checkpoints(out, study) for p in f.iterdir())
    result = CliRunner().invoke(app, ["study", "prune", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 finished runs slimmed" in result.output
    after = sum(p.stat().st_size for f in _checkpoints(out, study) for p in f.iterdir())
    assert after < before / 10
    assert CliRunner().invoke(app, ["study", "prune", str(tmp_path / "nothing")]).exit_code != 0
