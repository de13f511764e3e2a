"""`losslab study tensorboard DIR`: a stored study's runs as event files with an HParams table, read
back with tensorboard's own event reader."""

from __future__ import annotations

from studyfake import fake_run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from losslab.cli import app
from losslab.study.runner import run_study
from losslab.study.spec import parse_study

runner = CliRunner()


def _read(folder):
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


def test_study_tensorboard_writes_runs_and_an_hparams_table(tmp_path, tiny_spec):
    out = tmp_path / "study"
    run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)
    result = runner.invoke(app, ["study", "tensorboard", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 runs written" in result.output
    folders = sorted(p for p in (out / "tensorboard").glob("*/*") if p.is_dir())
    assert len(folders) == 4
    acc = _read(folders[0])
    assert "eval/segm/AP" in acc.Tags()["scalars"] and "train/total" in acc.Tags()["scalars"]
    hparams = EventAccumulator(str(folders[0]), size_guidance={"tensors": 0})
    hparams.Reload()
    plugin = hparams.PluginTagToContent("hparams")
    assert plugin  # the HParams session of this run
    assert runner.invoke(app, ["study", "tensorboard", str(tmp_path / "nothing")]).exit_code != 0
