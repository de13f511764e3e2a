"""`losslab models list` and `losslab models show` on the YOLACT presets."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from losslab.cli import app

runner = CliRunner()


def test_models_list_shows_the_yolact_presets():
    result = runner.invoke(app, ["models", "list", "yolact*", "--no-params"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("yolact_tiny", "yolact_base", "yolact_plus_base"):
        assert name in result.output
    assert "instance" in result.output


def test_models_show_prints_the_resolved_config_with_overrides():
    result = runner.invoke(app, ["models", "show", "yolact_plus_base", "mask_loss=0.5*mse + bce", "input_size=320"])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(result.output)
    assert cfg["mask_loss"] == "0.5*mse + bce" and cfg["input_size"] == 320
    assert cfg["dcn_stages"] == [2, 3, 4] and cfg["use_maskiou"] is True


def test_models_show_rejects_unknown_keys_with_a_suggestion():
    result = runner.invoke(app, ["models", "show", "yolact_tiny", "mask_los=dice"])
    assert result.exit_code != 0
    assert "mask_loss" in result.output


def test_train_takes_the_survey_rows_as_run_from_the_command_line(tmp_path):
    """`bce + 0.5*uncropped(mse)` (the survey's "0.5·MSE + BCE" as its code ran) trains YOLACT and is
    stored as written; a misuse of an operator is refused with its position before anything trains."""
    out = tmp_path / "run"
    args = ["model=yolact_tiny", "synth_train=4", "synth_val=2", "synth_size=64", "input_size=64", "batch_size=2"]
    args += [
        "max_iter=2",
        "log_every=1",
        "device=cpu",
        "num_samples=0",
        "fps_images=1",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    spec = "bce + 0.5*uncropped(mse)"
    result = runner.invoke(app, ["train", *args, f"mask_loss={spec}", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["mask_loss"] == spec
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "mask/bce" in header and "mask/0.5*uncropped(mse)" in header  # every term of the hybrid, logged
    bad = runner.invoke(app, ["train", *args, "mask_loss=log_cosh(dice)", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0
    assert "position 9" in bad.output and "value per pixel" in bad.output
    assert not (tmp_path / "bad" / "checkpoints").exists()
