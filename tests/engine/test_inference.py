"""Prediction sees an image file exactly as evaluation sees the same image in its dataset; the
predict pipeline draws the dense models too."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from losslab.data import build_dataset
from losslab.data.coco import read_image
from losslab.data.transforms import letterbox_image
from losslab.engine.inference import predict_files
from losslab.engine.run import run_experiment


def test_prediction_input_equals_the_evaluation_input(fake_data):
    root = Path(fake_data["instance"])
    dataset = build_dataset(root, "val", "instance", size=24, train=False)
    for i in range(len(dataset)):
        image, target = dataset[i]
        path = root / "val" / dataset.images[i]["file_name"]
        x, scale = letterbox_image(read_image(path), 24)
        assert scale == target["scale"] and torch.equal(x, image)


def test_predict_files_draws_a_dense_model(fake_models, fake_data, tmp_path):
    run = {"model": "fake_dense", "data": fake_data["dense"], "batch_size": 4, "max_iter": 1, "device": "cpu"}
    run_experiment({**run, "num_samples": 0, "fps_images": 1}, tmp_path / "run", progress=False)
    image = tmp_path / "wide.png"
    cv2.imwrite(str(image), np.full((10, 30, 3), 200, np.uint8))
    (written,) = predict_files(tmp_path / "run" / "checkpoints" / "last.pt", [image], tmp_path / "out")
    assert written == tmp_path / "out" / "wide.png" and cv2.imread(str(written)).shape == (10, 30, 3)
