"""A fake ``run_experiment`` for the study tests: writes what the trainer writes (config.yaml,
metrics.csv, checkpoints, result.json, samples/*.png) in milliseconds, with plausible numbers that
depend on the loss and the seed only.

Config keys it reads besides the trainer's: ``fake_fail`` (raise), ``fake_step_seconds`` (sleep per
step, for the kill test), ``fake_lr_peak`` (AP falls by 10 points per decade of ``lr`` away from it)
and ``fake_lr_peak_tune`` (the same on a dataset folder whose name contains "tune": the tuning split).
Like the trainer it resumes: a run folder with ``result.json`` returns it as is, and a checkpoint
continues from its step. Each step and each completion is appended to ``calls.log`` in the run folder
so that tests can count work done twice; ``worker.pid`` holds the id of the process that ran it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

BASE_AP = {"bce": 80.0, "dice": 60.0, "mse": 78.0}

#: The cut-down recipe of the end-to-end tests that go through the real runner and trainer: two steps
#: on 64-px images, in float32 (the wiring is under test, not bf16 numerics: tests/engine/test_amp.py),
#: with the trainer's own rule on skipped steps (a non-finite step fails the run, as in a real study).
TINY_REAL_CONFIG = {
    "max_iter": 2,
    "batch_size": 2,
    "input_size": 64,
    "warmup_iters": 1,
    "log_every": 1,
    "fps_images": 2,
    "num_samples": 1,
    "device": "cpu",
    "amp": False,
}


def _noise(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF - 0.5


def _write_png(path: Path, value: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((8, 8, 3), dtype=np.float32)
    img[..., 0] = value
    plt.imsave(path, img)


def lr_offset(config: dict[str, Any]) -> float:
    """AP points lost for training away from the fake's best learning rate (0 without one)."""
    tuning = "tune" in Path(str(config.get("data", ""))).name
    peak = config.get("fake_lr_peak_tune" if tuning else "fake_lr_peak") or config.get("fake_lr_peak")
    if not peak:
        return 0.0
    return -10.0 * abs(math.log10(float(config.get("lr", 1e-3)) / float(peak)))


def fake_metrics(loss: str, seed: int, offset: float = 0.0) -> dict[str, Any]:
    """COCO-like numbers: AP falls with the IoU threshold; 'all' is their mean."""
    base = BASE_AP.get(loss, 70.0) + 2.0 * _noise(f"{loss}/{seed}") + offset
    per_t = [max(0.0, min(100.0, base + 20 - 3.5 * i - (30 if i >= 8 else 0))) for i in range(10)]
    segm = {"AP": float(np.mean(per_t)), **{f"AP{50 + 5 * i}": v for i, v in enumerate(per_t)}}
    bbox = {k: v - 1.0 for k, v in segm.items()}
    boundary = {"AP": segm["AP"] - 5.0, "AP50": segm["AP50"] - 2.0, "AP75": segm["AP75"] - 6.0}
    return {"segm": segm, "bbox": bbox, "boundary": boundary}


def fake_run(config: dict[str, Any], run_dir: Path, progress: bool = True) -> dict[str, Any]:
    run_dir = Path(run_dir)
    log = run_dir / "calls.log"
    result_file = run_dir / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    if config.get("fake_fail"):
        raise RuntimeError(f"fake failure of {config.get('mask_loss')}")
    (run_dir / "worker.pid").write_text(str(os.getpid()))
    loss, seed, steps = str(config.get("mask_loss", "bce")), int(config.get("seed", 0)), int(config["max_iter"])
    (run_dir / "config.yaml").write_text(json.dumps(config))
    ckpt = run_dir / "checkpoints" / "last.txt"
    start = int(ckpt.read_text()) if ckpt.is_file() else 0
    metrics_csv = run_dir / "metrics.csv"
    if start == 0 or not metrics_csv.is_file():
        metrics_csv.write_text("iteration,lr,loss_mask,loss_class,total\n")
        start = 0
    for step in range(start + 1, steps + 1):
        time.sleep(float(config.get("fake_step_seconds", 0.0)))
        mask = 1.0 / step + 0.1 * BASE_AP.get(loss, 70.0) / 80.0
        with metrics_csv.open("a") as fh:
            fh.write(f"{step},0.001,{mask:.6f},{0.5 / step:.6f},{mask + 0.5 / step:.6f}\n")
        ckpt.parent.mkdir(exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(str(step))
        os.replace(tmp, ckpt)
        with log.open("a") as fh:
            fh.write(f"step {step}\n")
    images = [1, 2, 3, 4, 5, 6]
    base = BASE_AP.get(loss, 70.0) / 100
    result = {
        "metrics": fake_metrics(loss, seed, lr_offset(config)),
        "fps": 30.0 + _noise(f"fps/{loss}/{seed}"),
        "train_seconds": 1.0 + steps * 0.01,
        "iterations": steps,
        "skipped_steps": 0,
        "precision": "fp32",
        "per_image": {"segm": {str(i): base + 0.05 * _noise(f"{loss}/{seed}/{i}") for i in images}},
        "pr": {"segm": {"recall": [0.0, 0.5, 1.0], "precision": [1.0, base, base / 2]}},
    }
    for i in (1, 2):
        _write_png(run_dir / "samples" / f"{i}.png", base)
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, result_file)
    with log.open("a") as fh:
        fh.write("complete\n")
    return result
