"""The sample grid: ground truth drawn from the val split a run folder's config names, images holding an
object first, the overlay's score threshold, a JPEG."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from reportfake import write_tiny_coco

from losslab.report.samples import draw_ground_truth, load_ground_truth, make_sample_grid, score_threshold


@pytest.fixture
def run_dir(tmp_path):
    data = write_tiny_coco(tmp_path / "data")
    folder = tmp_path / "run"
    (folder / "samples").mkdir(parents=True)
    # as run_experiment writes it: {"train": {...}, "model": {...}}
    (folder / "config.yaml").write_text(json.dumps({"train": {"data": str(data), "model": "yolact_tiny"}, "model": {}}))
    for image_id in (1, 3):
        Image.fromarray(np.full((32, 32, 3), 60 * image_id, np.uint8)).save(folder / "samples" / f"{image_id}.png")
    return folder


def test_ground_truth_comes_from_the_runs_val_split(run_dir):
    truth = load_ground_truth(run_dir, [1, 2, 3, 99])
    assert truth.objects == {1: 1, 2: 1, 3: 0}  # 99 is no val image: left out
    picture = truth.pictures[1]
    assert picture.shape == (32, 32, 3) and picture.dtype == np.uint8
    inside, outside = picture[12, 12], picture[28, 28]
    assert inside[1] > inside[0] and (outside == 130).all()  # green inside the square, the image elsewhere


def test_draw_ground_truth_fills_and_outlines():
    image = np.zeros((20, 20, 3), np.uint8)
    mask = np.zeros((1, 20, 20), np.uint8)
    mask[0, 5:15, 5:15] = 1
    out = draw_ground_truth(image, mask)
    assert (out[10, 10] > 0).any() and (out[5, 5] == 255).all() and (out[0, 0] == 0).all()
    assert (image == 0).all()  # the input is not drawn on


def test_grid_puts_images_with_objects_first_and_is_a_jpeg(run_dir, tmp_path):
    samples = {"BCE": [run_dir / "samples" / "3.png", run_dir / "samples" / "1.png"]}
    grid = make_sample_grid(samples, run_dir, tmp_path / "grid.jpg", seed=0)
    assert grid is not None and grid.ground_truth and grid.image_ids == [1, 3] and grid.note == ""
    assert grid.threshold == score_threshold() == pytest.approx(0.3)
    with Image.open(grid.path) as image:
        assert image.format == "JPEG" and image.mode == "RGB"


def test_grid_without_ground_truth_says_why(run_dir, tmp_path):
    (run_dir / "config.yaml").write_text(json.dumps({"data": str(tmp_path / "nowhere")}))
    samples = {"BCE": [run_dir / "samples" / "1.png"]}
    grid = make_sample_grid(samples, run_dir, tmp_path / "grid.jpg", seed=0)
    assert grid is not None and not grid.ground_truth and grid.note.startswith("ground truth unavailable")
    dense = make_sample_grid(samples, run_dir, tmp_path / "dense.jpg", seed=0, task="dense")
    assert dense is not None and not dense.ground_truth and dense.threshold is None and dense.note == ""


def test_ground_truth_from_explicit_val_files(run_dir, tmp_path):
    data = tmp_path / "data"
    keys = {"val_json": str(data / "annotations" / "instances_val.json"), "val_images": str(data / "val")}
    (run_dir / "config.yaml").write_text(json.dumps({"train": {"data": "synthetic", **keys}, "model": {}}))
    assert load_ground_truth(run_dir, [1, 3]).objects == {1: 1, 3: 0}  # not the synthetic dataset
