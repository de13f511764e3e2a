"""Fake studies for the report tests: ``studyfake.fake_run`` with the shapes a report must flag, and a
tiny COCO val split so that the sample grid has a ground truth to draw.

Config keys read besides ``fake_run``'s: ``fake_shape`` (``"falling"``: the total loss falls in a straight
line to the end; otherwise it flattens), ``fake_skipped`` (that many steps recorded as skipped, in
``result.json`` and ``skipped_steps.csv`` as the trainer records them), ``fake_collapse`` (mask AP 0
with box AP kept, masks filling 97 % of their boxes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from studyfake import fake_run

from losslab.study.runner import run_study
from losslab.study.spec import parse_study


def shaped_run(config: dict[str, Any], run_dir: Path, progress: bool = True) -> dict[str, Any]:
    result = fake_run(config, run_dir, progress)
    run_dir = Path(run_dir)
    steps = int(config["max_iter"])
    noise = np.random.default_rng(int(config.get("seed", 0))).normal(0, 0.01, steps)
    if config.get("fake_shape") == "falling":
        total = [3.0 - 2.0 * s / steps + noise[s - 1] for s in range(1, steps + 1)]
    else:
        total = [1.0 + 2.0 * np.exp(-s / 4) + noise[s - 1] for s in range(1, steps + 1)]
    lines = ["iteration,lr,loss_mask,total"] + [f"{s},0.001,{0.5 * t:.6f},{t:.6f}" for s, t in enumerate(total, 1)]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    skipped = int(config.get("fake_skipped", 0))
    if skipped:
        rows = ["iteration,image_ids,terms"] + [f"{s},1 2,{{'loss_mask': nan}}" for s in range(1, skipped + 1)]
        (run_dir / "skipped_steps.csv").write_text("\n".join(rows) + "\n")
        result["skipped_steps"] = skipped
    if config.get("fake_collapse"):
        result["metrics"]["segm"] = dict.fromkeys(result["metrics"]["segm"], 0.0)
        result["per_image"]["segm"] = dict.fromkeys(result["per_image"]["segm"], 0.0)
        result["metrics"]["mask_fill"] = {"detections": 97.0, "ground_truth": 51.0}  # as Dice's masks do
    (run_dir / "result.json").write_text(json.dumps(result))
    return result


def write_tiny_coco(root: Path, size: int = 32) -> Path:
    """``root/val/{1,2,3}.png`` and ``root/annotations/instances_val.json``: images 1 and 2 hold one
    square object each, image 3 none (the fake runs draw samples of images 1 and 2)."""
    (root / "val").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, anns = [], []
    for image_id in (1, 2, 3):
        picture = np.full((size, size, 3), 90 + 40 * image_id, np.uint8)
        cv2.imwrite(str(root / "val" / f"{image_id}.png"), picture)
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": size, "height": size})
        if image_id < 3:
            x, y, w = 4 * image_id, 6, 12
            poly = [x, y, x + w, y, x + w, y + w, x, y + w]
            anns.append({"id": image_id, "image_id": image_id, "category_id": 1, "segmentation": [poly],
                         "area": float(w * w), "bbox": [x, y, w, w], "iscrowd": 0})  # fmt: skip
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "butt"}]}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(coco))
    return root


def flagged_study(tmp_path: Path, seeds: int = 2, iterations: int = 50) -> Path:
    """A stored fake study with one configuration of each kind: fine (BCE), still falling, collapsed,
    steps skipped; over a tiny COCO val split (the ground truth of the sample grid)."""
    data = write_tiny_coco(tmp_path / "data")
    spec = {
        "name": "flagged",
        "description": "fake runs, one per flag",
        "dataset": {"path": str(data)},
        "model": "yolact_tiny",
        "config": {"max_iter": iterations, "batch_size": 2},
        "grid": {
            "variants": {
                "BCE": {"mask_loss": "bce"},
                "Falling": {"mask_loss": "mse", "fake_shape": "falling"},
                "Collapsed": {"mask_loss": "dice", "fake_collapse": 1},
                "Skipping": {"mask_loss": "bce + mse", "fake_skipped": 7},
            }
        },
        "seeds": seeds,
        "baseline": "BCE",
    }
    out = tmp_path / "study"
    run_study(parse_study(spec), out, run_fn=shaped_run, progress=False)
    return out
