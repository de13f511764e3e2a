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
