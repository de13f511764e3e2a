"""Boundary IoU: our tensor boundary and faster-coco-eval's Boundary AP against a slow, independent
implementation (a chessboard distance transform instead of repeated erosion, and pycocotools'
own Python matching and accumulation instead of faster-coco-eval's C++)."""

from __future__ import annotations

import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from faster_coco_eval.core.mask import rleToBoundary
from pycocotools.cocoeval import COCOeval
from scipy import ndimage

from losslab.engine.boundary_iou import boundary_iou_counts, boundary_width, mask_boundary
from losslab.engine.evaluate import METRIC_KEYS, evaluate_coco
from tests.engine._coco_cases import pycocotools_eval, pycocotools_metrics, random_blob, random_case, rle_of

RATIO = 0.02
# pycocotools' decode warns under numpy 2 (its __array__ signature); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def slow_boundary(mask: np.ndarray, ratio: float = RATIO) -> np.ndarray:
    """Pixels of the mask whose chessboard distance to the background (the image outside
    included) is at most d = round(ratio x diagonal): the paper's G_d ∩ G."""
    h, w = mask.shape
    d = max(1, round(ratio * math.hypot(h, w)))
    dist = ndimage.distance_transform_cdt(np.pad(mask > 0, 1), metric="chessboard")[1:-1, 1:-1]
    return (mask > 0) & (dist <= d)


def slow_boundary_iou(a: np.ndarray, b: np.ndarray) -> float:
    ba, bb = slow_boundary(a), slow_boundary(b)
    union = (ba | bb).sum()
    return float((ba & bb).sum() / union) if union else 0.0


class SlowBoundaryEval(COCOeval):
    """pycocotools' COCOeval whose IoU is Boundary AP's: min(mask IoU, boundary IoU) against
    non-crowd objects, the crowd IoU (intersection over detection area) against crowd regions."""

    def computeIoU(self, imgId, catId):
        gt, dt = self._gts[imgId, catId], self._dts[imgId, catId]
        if not gt or not dt:
            return []
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in order][: self.params.maxDets[-1]]
        iscrowd = [int(g["iscrowd"]) for g in gt]
        ious = np.array(mask_utils.iou([d["segmentation"] for d in dt], [g["segmentation"] for g in gt], iscrowd))
        for j, g in enumerate(gt):
            if iscrowd[j]:
                continue
            gm = mask_utils.decode(g["segmentation"])
            for i, d in enumerate(dt):
                ious[i, j] = min(ious[i, j], slow_boundary_iou(mask_utils.decode(d["segmentation"]), gm))
        return ious


def test_boundary_width_follows_the_image_diagonal():
    assert boundary_width(300, 400) == 10  # 0.02 x 500
    assert boundary_width(10, 10) == 1  # never below one pixel


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tensor_boundary_equals_distance_transform(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(20, 120)), int(rng.integers(20, 120))
    masks = np.stack([random_blob(rng, h, w) for _ in range(5)] + [np.ones((h, w), np.uint8)])
    ours = mask_boundary(torch.from_numpy(masks)).numpy()
    expected = np.stack([slow_boundary(m) for m in masks])
    np.testing.assert_array_equal(ours, expected)
    assert ours[-1].sum() > 0 and not ours[-1][h // 2, w // 2]  # a full mask: a frame at the image edge


@pytest.mark.parametrize("seed", [0, 1])
def test_faster_coco_eval_boundary_equals_distance_transform(seed):
    rng = np.random.default_rng(seed)
    for _ in range(5):
        m = random_blob(rng, int(rng.integers(20, 150)), int(rng.integers(20, 150)))
        theirs = mask_utils.decode(rleToBoundary(rle_of(m), RATIO))
        np.testing.assert_array_equal(theirs.astype(bool), slow_boundary(m))


def test_boundary_iou_counts_hand_made():
    a = torch.zeros(1, 40, 40, dtype=torch.bool)
    a[0, 10:30, 10:30] = True  # d = round(0.02 * 56.6) = 1: the boundary is the 1-px ring, 76 pixels
    inter, union = boundary_iou_counts(a, a)
    assert inter.item() == union.item() == 76
    shifted = torch.roll(a, 1, dims=2)
    inter, union = boundary_iou_counts(a, shifted)
    expected = slow_boundary_iou(a[0].numpy().astype(np.uint8), shifted[0].numpy().astype(np.uint8))
    assert inter.item() / union.item() == pytest.approx(expected)
    assert inter.item() / union.item() < 0.5  # a one-pixel shift halves the boundary overlap


@pytest.mark.parametrize("seed", [0, 3])
def test_boundary_ap_equals_slow_reference(seed):
    gt, dets = random_case(seed, n_images=8, max_size=90)
    ours = evaluate_coco(gt, dets, ("boundary",))["boundary"]
    ref = pycocotools_metrics(pycocotools_eval(gt, dets, "segm", cls=SlowBoundaryEval))
    for key in METRIC_KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-9, nan_ok=True), key
    assert ref["AP"] > 0  # the case is not degenerate
    together = evaluate_coco(gt, dets, ("segm", "boundary", "bbox"))  # one shared ground truth
    assert together["boundary"] == ours


def test_boundary_ap_is_stricter_than_mask_ap():
    gt, dets = random_case(5, n_images=8, max_size=90)
    res = evaluate_coco(gt, dets, ("segm", "boundary"))
    assert res["boundary"]["AP"] <= res["segm"]["AP"]  # min(mask IoU, boundary IoU) <= mask IoU
    assert res["boundary"]["AP"] < res["segm"]["AP"]  # and jittered masks lose on the boundary
