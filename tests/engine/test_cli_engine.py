"""`losslab train / eval / predict / fps` through typer's CliRunner, on the fake presets and tiny
synthetic datasets."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from losslab.cli import app

runner = CliRunner()
TRAIN = [
    *("model=fake_instance", "batch_size=4", "max_iter=3", "device=cpu", "num_samples=2", "fps_images=2"),
    "--no-progress",
]
FPS_KEYS = {"fps", "ms_median", "size", "device", "threads"}


@pytest.fixture
def trained(fake_models, fake_data, tmp_path):
    out = tmp_path / "run"
    data = f"data={fake_data['instance']}"
    res = runner.invoke(app, ["train", *TRAIN, data, "mask_loss=0.5*mse + bce", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_train_writes_the_run_and_prints_the_paper_row(trained):
    result = json.loads((trained / "result.json").read_text())
    assert result["iterations"] == 3
    assert (trained / "checkpoints" / "last.pt").is_file() and (trained / "metrics.csv").is_file()
    assert "config.yaml" in {p.name for p in trained.iterdir()}


def test_train_refuses_an_existing_run_without_resume(trained):
    res = runner.invoke(app, ["train", *TRAIN, "--out", str(trained)])
    assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, ["train", "max_iter=5", "--no-progress", "--resume", "--out", str(trained)])
    assert res.exit_code == 0, res.output
    assert json.loads((trained / "result.json").read_text())["iterations"] == 5


def test_train_rejects_unknown_keys_with_a_suggestion(fake_models, tmp_path):
    res = runner.invoke(app, ["train", "model=fake_dense", "batch_sise=2", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "batch_size" in res.output


def test_train_reads_a_yaml_config(fake_models, fake_data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"model: fake_dense\nbatch_size: 4\nmax_iter: 2\ndevice: cpu\nnum_samples: 1\ndata: {fake_data['dense']}\n"
    )
    res = runner.invoke(
        app, ["train", "--config", str(cfg), "max_iter=3", "--no-progress", "--out", str(tmp_path / "y")]
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "y" / "result.json").read_text())["iterations"] == 3
    assert "IoU" in res.output


def test_eval_prints_the_paper_row_and_writes_eval_json(trained, fake_data, tmp_path):
    out = tmp_path / "e.json"
    res = runner.invoke(
        app, ["eval", str(trained / "checkpoints" / "last.pt"), "--data", fake_data["instance"], "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "AP95" in res.output and "mask" in res.output and "box" in res.output
    assert set(json.loads(out.read_text())) == {"segm", "bbox", "boundary", "mask_fill"}


def test_predict_writes_full_size_overlays(trained, tmp_path):
    img = tmp_path / "img.jpg"
    picture = np.zeros((20, 30, 3), np.uint8)
    picture[5:12, 4:15] = 255
    cv2.imwrite(str(img), picture)
    res = runner.invoke(
        app,
        [
            "predict",
            str(trained / "checkpoints" / "last.pt"),
            str(img),
            "--out",
            str(tmp_path / "p"),
            "--score-threshold",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    drawn = cv2.imread(str(tmp_path / "p" / "img.png"))
    assert drawn.shape == (20, 30, 3) and not np.array_equal(drawn, picture)
    res = runner.invoke(
        app, ["predict", str(trained / "checkpoints" / "last.pt"), str(tmp_path / "nope.png"), "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "cannot read" in res.output


def test_fps_json_for_a_checkpoint_and_a_preset(trained):
    res = runner.invoke(app, ["fps", str(trained / "checkpoints" / "last.pt"), "--json", "--images", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out) == FPS_KEYS and out["size"] == 16 and out["fps"] > 0
    res = runner.invoke(app, ["fps", "fake_dense", "--size", "32", "--json", "--images", "2"])
    assert json.loads(res.output)["size"] == 32


@pytest.mark.parametrize("missing", ["missing.pt", "runs/x/last.pth", "runs/x/model"])
def test_fps_of_a_missing_checkpoint_says_so(tmp_path, missing):
    res = runner.invoke(app, ["fps", str(tmp_path / missing), "--images", "1"])
    assert res.exit_code == 2 and f"no checkpoint at {tmp_path / missing}" in res.output
    assert "unknown model" not in res.output


def test_help_texts_explain():
    for cmd in ("train", "eval", "predict", "fps"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and len(res.output) > 300


def test_fps_takes_model_overrides_and_the_fast_path():
    res = runner.invoke(
        app, ["fps", "yolact_tiny", "num_classes=1", "--size", "64", "--images", "2", "--fast", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["size"] == 64 and out["fps"] > 0 and out["device"] == "cpu"
    res = runner.invoke(app, ["fps", "yolact_tiny", "num_clases=1", "--size", "64"])
    assert res.exit_code != 0 and "num_classes" in res.output
    res = runner.invoke(app, ["fps", "masknet", "--fast"])
    assert res.exit_code != 0 and "no fast inference path" in res.output


def test_a_bad_loss_spec_is_refused_before_anything_is_read_or_written(tmp_path):
    """The model config's loss fields are checked where the config is resolved: no data, no folder."""
    out = tmp_path / "x"
    res = runner.invoke(
        app, ["train", "model=yolact_tiny", "mask_loss=bce + dcie", "data=/nonexistent", "--out", str(out)]
    )
    assert res.exit_code == 2 and "mask_loss='bce + dcie'" in res.output and "dice" in res.output
    assert "position 6" in res.output and not out.exists()
    res = runner.invoke(app, ["train", "model=depthmask_tiny", "depth_loss=dice", "--out", str(out)])
    assert res.exit_code == 2 and "regression" in res.output and not out.exists()
