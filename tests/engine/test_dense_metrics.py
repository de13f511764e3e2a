"""DenseEvaluator: hand-computed IoU / Dice (dataset-level and per image), Boundary IoU against
the boundary module, depth RMSE / AbsRel, and batching invariance."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.engine.boundary_iou import boundary_iou_counts
from losslab.engine.dense_metrics import DenseEvaluator

BIG = 20.0  # a logit whose sigmoid is 1 for all practical purposes


def logits_of(mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask > 0, BIG, -BIG)


def test_hand_computed_dataset_level_and_per_image():
    gt = torch.zeros(2, 1, 10, 10)
    pred = torch.zeros(2, 1, 10, 10)
    gt[0, 0, :4, :5] = 1  # 20 px
    pred[0, 0, :4, :] = 1  # 40 px, inter 20, union 40 -> IoU 0.5, Dice 2*20/60
    gt[1, 0, 0, :2] = 1  # 2 px
    pred[1, 0, 0, :1] = 1  # 1 px, inter 1, union 2 -> IoU 0.5, Dice 2/3
    ev = DenseEvaluator()
    ev.process({"mask": gt}, {"mask": logits_of(pred)})
    m = ev.evaluate()["mask"]
    assert m["IoU"] == pytest.approx(100 * 21 / 42)
    assert m["Dice"] == pytest.approx(100 * 42 / 63)
    assert m["IoU_image"] == pytest.approx(50.0)
    assert m["Dice_image"] == pytest.approx(100 * (40 / 60 + 2 / 3) / 2)
    inter, union = boundary_iou_counts(pred[:, 0] > 0, gt[:, 0] > 0)
    assert m["BoundaryIoU"] == pytest.approx(100 * inter.sum().item() / union.sum().item())
    assert m["BoundaryIoU_image"] == pytest.approx(100 * (inter / union).mean().item())
    assert "depth" not in ev.evaluate()


def test_dataset_level_weighs_pixels_per_image_weighs_images():
    gt = torch.zeros(2, 1, 16, 16)
    gt[0, 0] = 1  # a large object, found exactly
    gt[1, 0, 0, 0] = 1  # a one-pixel object, missed
    pred = gt.clone()
    pred[1] = 0
    ev = DenseEvaluator()
    ev.process({"mask": gt}, {"mask": logits_of(pred)})
    m = ev.evaluate()["mask"]
    assert m["IoU"] == pytest.approx(100 * 256 / 257)
    assert m["IoU_image"] == pytest.approx(50.0)


def test_empty_prediction_and_target_score_100_and_threshold_applies_to_probabilities():
    ev = DenseEvaluator(threshold=0.7)
    gt = torch.zeros(1, 1, 8, 8)
    ev.process({"mask": gt}, {"mask": torch.full((1, 1, 8, 8), math.log(0.6 / 0.4))})  # p = 0.6 < 0.7
    assert ev.evaluate()["mask"]["IoU_image"] == 100.0 and ev.evaluate()["mask"]["Dice"] == 100.0


def test_batching_does_not_change_the_result():
    torch.manual_seed(0)
    gt = (torch.rand(6, 1, 24, 24) > 0.6).float()
    logits = torch.randn(6, 1, 24, 24) * 3
    depth_gt = torch.rand(6, 1, 24, 24) * 5
    depth = depth_gt + 0.1 * torch.randn(6, 1, 24, 24)
    whole, split = DenseEvaluator(), DenseEvaluator()
    whole.process({"mask": gt, "depth": depth_gt}, {"mask": logits, "depth": depth})
    for sl in (slice(0, 1), slice(1, 4), slice(4, 6)):
        split.process({"mask": gt[sl], "depth": depth_gt[sl]}, {"mask": logits[sl], "depth": depth[sl]})
    a, b = whole.evaluate(), split.evaluate()
    for task in a:
        for key in a[task]:
            assert a[task][key] == pytest.approx(b[task][key]), (task, key)


def test_depth_rmse_and_absrel_skip_invalid_pixels():
    gt = torch.tensor([[[[1.0, 2.0], [4.0, 0.0]]]])  # the 0 is a missing measurement
    pred = torch.tensor([[[[2.0, 2.0], [2.0, 9.0]]]])
    ev = DenseEvaluator()
    ev.process({"mask": torch.ones(1, 1, 2, 2), "depth": gt}, {"mask": torch.full((1, 1, 2, 2), BIG), "depth": pred})
    d = ev.evaluate()["depth"]
    assert d["RMSE"] == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert d["AbsRel"] == pytest.approx((1 / 1 + 0 + 2 / 4) / 3)


def test_errors_name_the_problem():
    ev = DenseEvaluator()
    with pytest.raises(ValueError, match="before any process"):
        ev.evaluate()
    with pytest.raises(ValueError, match="differ"):
        ev.process({"mask": torch.zeros(1, 1, 8, 8)}, {"mask": torch.zeros(1, 1, 4, 4)})
    with pytest.raises(ValueError, match="no"):
        ev.process(
            {"mask": torch.zeros(1, 1, 8, 8)}, {"mask": torch.zeros(1, 1, 8, 8), "depth": torch.zeros(1, 1, 8, 8)}
        )
    with pytest.raises(ValueError, match="threshold"):
        DenseEvaluator(threshold=1.5)
    ev.process({"mask": torch.zeros(2, 8, 8)}, torch.zeros(2, 1, 8, 8))  # (B, H, W) targets and bare logits
    assert ev.evaluate()["mask"]["IoU"] == 100.0
    ev.reset()
    with pytest.raises(ValueError, match="before any process"):
        ev.evaluate()
