"""CocoInstances on a tiny dataset: formats, label remapping, crowd, empty images, pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from losslab.data import MEAN, STD, CocoInstances, build_transforms, denormalize
from losslab.data.transforms import masks_to_boxes

# pycocotools 2.0 decode warns under numpy 2 (its own code, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_items_follow_the_contract(tiny_coco):
    ann, img_dir, _ = tiny_coco
    ds = CocoInstances(ann, img_dir, transform=build_transforms(64, train=False))
    assert len(ds) == 3
    assert ds.num_classes == 2
    # Categories sorted by id: 3 -> label 1, 7 -> label 2.
    assert ds.label_to_cat == {1: 3, 2: 7}
    assert ds.cat_names == ["cap", "cig_butt"]
    image, t = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert t["masks"].shape == (2, 64, 64) and t["masks"].dtype == torch.uint8
    assert t["boxes"].shape == (2, 4) and t["boxes"].dtype == torch.float32
    assert t["labels"].tolist() == [2, 1]
    assert t["iscrowd"].dtype == torch.bool and not t["iscrowd"].any()
    assert t["image_id"] == 1 and t["orig_size"] == (40, 60)
    assert t["scale"] == pytest.approx(64 / 60)


def test_letterbox_pads_right_and_bottom_and_maps_back(tiny_coco):
    ann, img_dir, _ = tiny_coco
    ds = CocoInstances(ann, img_dir, transform=build_transforms(120, train=False))
    image, t = ds[0]  # 40x60 -> 80x120, padding rows 80..119
    assert t["scale"] == pytest.approx(2.0)
    assert torch.all(image[:, 80:, :] == 0)  # padding is the mean colour, 0 after normalising
    assert t["masks"][:, 80:, :].sum() == 0
    # The first polygon spans x 10..30, y 10..20 in the original image.
    box = t["boxes"][0] / t["scale"]
    assert torch.allclose(box, torch.tensor([10.0, 10.0, 30.0, 20.0]), atol=1.0)


def test_masks_round_trip_through_pycocotools(tiny_coco):
    ann, img_dir, _ = tiny_coco
    coco = COCO(str(ann))
    ds = CocoInstances(ann, img_dir)  # no resize: original size, normalised
    for i, info in enumerate(ds.images):
        _, t = ds[i]
        ref = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))]
        assert len(ref) == len(t["masks"])
        for mine, theirs in zip(t["masks"].numpy(), ref, strict=True):
            np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(t["boxes"].numpy(), masks_to_boxes(t["masks"].numpy()))


def test_crowd_is_flagged_and_empty_image_kept(tiny_coco):
    ann, img_dir, _ = tiny_coco
    ds = CocoInstances(ann, img_dir, transform=build_transforms(32, train=False))
    _, t = ds[1]
    assert t["iscrowd"].tolist() == [False, False, True]
    assert t["labels"].tolist() == [2, 1, 2]
    _, empty = ds[2]
    assert empty["image_id"] == 5
    assert empty["masks"].shape == (0, 32, 32) and empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_no_transform_gives_normalised_original(tiny_coco):
    ann, img_dir, _ = tiny_coco
    image, t = CocoInstances(ann, img_dir)[1]
    assert image.shape == (3, 50, 50) and t["scale"] == 1.0
    back = denormalize(image)
    assert back.min() >= 0 and back.max() <= 1
    # The mean colour normalises to zero.
    mean = (torch.tensor(MEAN).view(3, 1, 1) - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert torch.all(denormalize(mean.expand(3, 2, 2)) - torch.tensor(MEAN).view(3, 1, 1) < 1e-6)


def test_training_pipeline_keeps_every_array_in_step(tiny_coco):
    ann, img_dir, _ = tiny_coco
    ds = CocoInstances(ann, img_dir, transform=build_transforms(48, train=True))
    torch.manual_seed(0)
    for _ in range(10):
        for i in range(len(ds)):
            image, t = ds[i]
            n = len(t["labels"])
            assert image.shape == (3, 48, 48)
            assert t["masks"].shape == (n, 48, 48) and t["boxes"].shape == (n, 4) and t["iscrowd"].shape == (n,)
            np.testing.assert_array_equal(t["boxes"].numpy(), masks_to_boxes(t["masks"].numpy()))
