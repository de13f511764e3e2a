"""Joint transforms: boxes equal the masks' tight boxes after every step; arrays stay in step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from losslab.data.transforms import (
    MEAN,
    Compose,
    Expand,
    Letterbox,
    PhotometricDistort,
    RandomFlip,
    RandomSampleCrop,
    ToTensor,
    build_transforms,
    masks_to_boxes,
    sync_boxes,
)


def _sample(rng: np.random.Generator, h: int = 40, w: int = 56, n: int = 3, crowd: bool = True) -> dict:
    masks = np.zeros((n, h, w), np.uint8)
    for k in range(n):
        y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
        masks[k, y : y + rng.integers(2, 6), x : x + rng.integers(2, 6)] = 1
        masks[k, y + 1, x + 4] = 1  # not a rectangle
    iscrowd = np.zeros(n, bool)
    if crowd and n:
        iscrowd[-1] = True
    s = {
        "image": rng.uniform(0, 255, (h, w, 3)).astype(np.float32),
        "masks": masks,
        "labels": np.arange(1, n + 1, dtype=np.int64),
        "iscrowd": iscrowd,
        "scale": 1.0,
    }
    return sync_boxes(s)


def _consistent(s: dict) -> None:
    n = len(s["labels"])
    assert s["masks"].shape[0] == n == len(s["iscrowd"]) == len(s["boxes"])
    assert s["masks"].shape[1:] == s["image"].shape[:2]
    np.testing.assert_array_equal(np.asarray(s["boxes"]), masks_to_boxes(np.asarray(s["masks"])))
    assert all(m.any() for m in np.asarray(s["masks"]))


def test_masks_to_boxes_convention():
    m = np.zeros((1, 10, 10), np.uint8)
    m[0, 2:5, 3:8] = 1  # rows 2..4, cols 3..7
    assert masks_to_boxes(m).tolist() == [[3, 2, 8, 5]]


STEPS = [PhotometricDistort(), Expand(p=1.0), RandomSampleCrop(), RandomFlip(p=1.0), Letterbox(32)]


@pytest.mark.parametrize("seed", range(25))
def test_every_step_keeps_boxes_equal_to_mask_boxes(seed):
    rng = np.random.default_rng(seed)
    s = _sample(rng, n=int(rng.integers(0, 4)))
    labels_before = set(s["labels"].tolist())
    for step in STEPS:
        s = step(s, rng)
        _consistent(s)
        assert set(s["labels"].tolist()) <= labels_before  # instances only ever dropped, never invented
    assert s["image"].shape == (32, 32, 3)


def test_flip_mirrors_boxes():
    rng = np.random.default_rng(0)
    s = _sample(rng, crowd=False)
    before = s["boxes"].copy()
    s = RandomFlip(p=1.0)(s, rng)
    w = s["image"].shape[1]
    np.testing.assert_array_equal(s["boxes"][:, [0, 2]], w - before[:, [2, 0]])


def test_crop_drops_instances_consistently():
    # Two far-apart objects: crops that keep one of them must drop the other from every array.
    dropped = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        s = {
            "image": np.zeros((100, 100, 3), np.float32),
            "masks": np.zeros((2, 100, 100), np.uint8),
            "labels": np.array([1, 2]),
            "iscrowd": np.zeros(2, bool),
            "scale": 1.0,
        }
        s["masks"][0, 5:15, 5:15] = 1
        s["masks"][1, 85:95, 85:95] = 1
        s = RandomSampleCrop()(sync_boxes(s), rng)
        _consistent(s)
        assert len(s["labels"]) >= 1  # a crop always keeps an object when there are some
        dropped += len(s["labels"]) == 1
    assert dropped > 0


def test_crowd_regions_survive_crops_as_crowd():
    rng = np.random.default_rng(3)
    for _ in range(20):
        s = _sample(rng, n=3, crowd=True)
        s["masks"][2] = 1  # crowd covers the whole image, so any crop keeps some of it
        s = RandomSampleCrop()(sync_boxes(s), rng)
        assert s["iscrowd"].sum() == 1 and s["labels"][s["iscrowd"]].tolist() == [3]


def test_image_without_instances_goes_through():
    rng = np.random.default_rng(1)
    s = _sample(rng, n=0)
    out = build_transforms(24, train=True)(s, rng)
    assert out["image"].shape == (3, 24, 24) and out["masks"].shape == (0, 24, 24) and out["boxes"].shape == (0, 4)


def test_letterbox_scale_and_padding():
    rng = np.random.default_rng(0)
    s = _sample(rng, h=20, w=40, crowd=False)
    boxes = s["boxes"].copy()
    s = Letterbox(80)(s, rng)
    assert s["scale"] == 2.0
    assert np.allclose(s["image"][40:], np.array(MEAN, np.float32) * 255)
    assert np.abs(s["boxes"] / 2 - boxes).max() <= 1.0


def test_to_tensor_types_and_normalisation():
    rng = np.random.default_rng(0)
    s = _sample(rng)
    s["image"][:] = np.array(MEAN, np.float32) * 255
    out = ToTensor()(s, rng)
    assert out["image"].shape == (3, 40, 56) and torch.allclose(out["image"], torch.zeros(1), atol=1e-5)
    assert out["masks"].dtype == torch.uint8 and out["labels"].dtype == torch.int64
    assert out["iscrowd"].dtype == torch.bool and out["boxes"].dtype == torch.float32


def test_same_generator_same_augmentation():
    a = build_transforms(32, train=True)(_sample(np.random.default_rng(5)), np.random.default_rng(9))
    b = build_transforms(32, train=True)(_sample(np.random.default_rng(5)), np.random.default_rng(9))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["masks"], b["masks"])
    assert isinstance(build_transforms(32, train=False), Compose)
