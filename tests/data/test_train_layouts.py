"""Training on datasets as their owners have them, through the paths a user takes: `losslab data synth
--layout`, `losslab data check ROOT`, `losslab train data=ROOT`, and a COCO file with flat-list
polygons over 16-bit single-band GeoTIFFs, with no conversion by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin
from typer.testing import CliRunner

from losslab.cli import app
from losslab.data.synth import SynthConfig, generate

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
runner = CliRunner()
TINY_RUN = {
    "model": "yolact_tiny",
    "input_size": 64,
    "batch_size": 2,
    "max_iter": 2,
    "warmup_iters": 1,
    "fps_images": 1,
    "num_samples": 1,
    "device": "cpu",
    "amp": False,
}


def test_cig_butts_layout_checks_and_trains_from_the_command_line(tmp_path):
    root = tmp_path / "cig_butts"
    synth = ["data", "synth", str(root), "--train", "4", "--val", "2", "--size", "64", "--workers", "1"]
    assert runner.invoke(app, [*synth, "--layout", "cig_butts"]).exit_code == 0
    res = runner.invoke(app, ["data", "check", str(root)])
    assert res.exit_code == 0, res.output
    keys = [f"{k}={v}" for k, v in TINY_RUN.items()]
    res = runner.invoke(app, ["train", f"data={root}", *keys, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert f"data: found the Cigarette Butts layout in {root} (train, val)" in res.output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["iterations"] == 2 and "segm" in result["metrics"]


def _geotiff_16bit(src, dest) -> None:
    """A grayscale 16-bit single-band TIFF of ``src`` (12 bits used) with GeoTIFF tags."""
    gray = np.asarray(Image.open(src).convert("L")).astype(np.uint16) * 16
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, kind, value in ((33550, 12, (0.5, 0.5, 0.0)), (33922, 12, (0.0,) * 6), (34735, 3, (1, 1, 0, 0))):
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    Image.fromarray(gray).save(dest, tiffinfo=ifd, compression="tiff_lzw")


def test_flat_polygons_over_16bit_geotiffs_train_without_conversion(tmp_path):
    root = generate(
        tmp_path / "ds", SynthConfig(train=4, val=2, size=64, seed=2, objects="1"), workers=1, progress=False
    )
    flat = 0
    for split in ("train", "val"):
        ann = root / "annotations" / f"instances_{split}.json"
        data = json.loads(ann.read_text())
        for im in data["images"]:
            png = root / split / im["file_name"]
            im["file_name"] = png.with_suffix(".tif").name
            _geotiff_16bit(png, png.with_suffix(".tif"))
            png.unlink()
        for a in data["annotations"]:
            if isinstance(a["segmentation"], list) and len(a["segmentation"]) == 1:
                a["segmentation"] = a["segmentation"][0]
                flat += 1
        ann.write_text(json.dumps(data))
    assert flat >= 4
    res = runner.invoke(app, ["data", "check", str(root)])
    assert res.exit_code == 0, res.output
    assert "notes: flat-list polygon" in res.output and "notes: scaled to 8 bit" in res.output

    from losslab.engine.run import run_experiment

    result = run_experiment({**TINY_RUN, "data": str(root)}, tmp_path / "run", progress=False)
    assert result["iterations"] == 2 and result["skipped_steps"] == 0
    # every metric is a number, except the size classes without objects: undefined (NaN), not -1
    assert all(math.isfinite(v) for k, v in result["metrics"]["segm"].items() if k not in ("APs", "APm", "APl"))
