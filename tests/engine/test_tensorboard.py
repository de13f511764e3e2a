"""TensorBoard event files of a run with tensorboard=true, read back with tensorboard's own reader."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from losslab.cli import app

runner = CliRunner()


def _read(folder):
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


def test_a_run_with_tensorboard_writes_every_logged_term_and_each_evaluation(fake_models, fake_data, tmp_path):
    out = tmp_path / "run"
    args = ["model=fake_instance", "batch_size=4", "max_iter=4", "log_every=1", "eval_every=2", "device=cpu"]
    args += ["num_samples=0", "fps_images=1", f"data={fake_data['instance']}", "mask_loss=bce + 0.5*mse"]
    result = runner.invoke(app, ["train", *args, "tensorboard=true", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    tags = _read(out / "tensorboard").Tags()["scalars"]
    assert {"train/total", "train/lr", "train/images_per_s", "eval/segm/AP", "eval/bbox/AP50"} <= set(tags)
    assert any(t.startswith("train/loss_") for t in tags)
    steps = [e.step for e in _read(out / "tensorboard").Scalars("train/total")]
    assert steps == [1, 2, 3, 4]
    evals = [e.step for e in _read(out / "tensorboard").Scalars("eval/segm/AP")]
    assert evals == [2, 4]  # the periodic evaluation, then the final one


def test_tensorboard_without_the_package_is_refused_with_the_install_command(monkeypatch):
    import losslab.engine.tensorboard as tb
    from losslab.engine.config import TrainConfig

    monkeypatch.setattr(
        tb, "MISSING", "tensorboard=true needs the tensorboard package: pip install -e '.[tensorboard]'"
    )
    with pytest.raises(ValueError, match="pip install"):
        TrainConfig(tensorboard=True)
