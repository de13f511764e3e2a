"""`losslab data noise` and the `label_noise` key of `losslab train`, through typer's CliRunner."""

from __future__ import annotations

import json

import cv2
import pytest
from typer.testing import CliRunner

from losslab.cli import app
from losslab.data.synth import SynthConfig, generate

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    cfg = SynthConfig(train=12, val=2, size=64, seed=2, objects="1-2")
    return generate(tmp_path_factory.mktemp("noise-cli") / "ds", cfg, workers=1, progress=False)


def _measure(root, spec: str, tmp_path) -> dict:
    args = ["data", "noise", spec, "--data", str(root), "--out", str(tmp_path / "n.png"), "--images", "12", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_writes_a_picture_and_prints_the_mean_iou(root, tmp_path):
    out = tmp_path / "pics" / "noise.png"
    args = ["data", "noise", "boundary(px=2) + drop(p=0.2)", "--data", str(root), "--out", str(out), "--show", "3"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "label_noise=boundary(px=2) + drop(p=0.2): mean IoU 0." in res.output and "over 12 images" in res.output
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] > picture.shape[0] > 200  # three columns of two rows


def test_the_mean_iou_falls_as_px_grows(root, tmp_path):
    ious = [_measure(root, spec, tmp_path)["mean_iou"] for spec in ("none", *(f"boundary(px={k})" for k in (1, 2, 4)))]
    assert ious[0] == 1.0
    assert ious[0] > ious[1] > ious[2] > ious[3] > 0.1, ious
    drop = _measure(root, "drop(p=0.5)", tmp_path)
    assert drop["spec"] == "drop(p=0.5)" and drop["images"] == 12 and 0 < drop["dropped"] < drop["instances"]
    assert drop["mean_iou"] < 1.0 and drop["emptied"] == 0


def test_bad_specs_and_folders_are_refused_without_a_traceback(root, tmp_path):
    res = runner.invoke(
        app, ["data", "noise", "dilate(px=oops)", "--data", str(root), "--out", str(tmp_path / "x.png")]
    )
    assert res.exit_code == 2 and "px must be a whole number" in res.output and "position 0" in res.output
    res = runner.invoke(app, ["data", "noise", "dilat(px=1)", "--data", str(root)])
    assert res.exit_code == 2 and "Did you mean 'dilate'" in res.output
    res = runner.invoke(app, ["data", "noise", "none", "--data", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "neither 'synthetic' nor an existing dataset folder" in res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    assert not (tmp_path / "x.png").exists()


def test_train_refuses_a_bad_level_before_training(tmp_path):
    res = runner.invoke(app, ["train", "label_noise=dilate(px=oops)", "--out", str(tmp_path / "run")])
    assert res.exit_code != 0 and "label_noise" in res.output and "px must be" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_default_synthetic_dataset(tmp_path):
    args = [
        "data",
        "noise",
        "shift(px=2)",
        "--size",
        "48",
        "--images",
        "10",
        "--out",
        str(tmp_path / "s.png"),
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["data"] == "synthetic" and result["images"] == 10 and 0.2 < result["mean_iou"] < 1.0
