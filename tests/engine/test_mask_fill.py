"""``box_fill`` and ``FillMeter``: how much of its box each mask covers, on hand-made masks."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.engine.mask_fill import FILL_SCORE, FillMeter, box_fill


def _masks() -> tuple[torch.Tensor, torch.Tensor]:
    """Three 8x8 boxes in a 16x16 frame: filled, left half filled, empty; and a box too thin to hold
    a pixel centre."""
    masks = torch.zeros(4, 16, 16)
    masks[0, 2:10, 2:10] = 1.0
    masks[1, 4:12, 4:8] = 0.9
    masks[1, 4:12, 8:12] = 0.4  # below the threshold
    boxes = torch.tensor([[2.0, 2.0, 10.0, 10.0], [4.0, 4.0, 12.0, 12.0], [0.0, 0.0, 8.0, 8.0], [3.1, 3.0, 3.4, 9.0]])
    return boxes, masks


def test_box_fill_counts_the_pixels_of_each_box_its_mask_covers():
    boxes, masks = _masks()
    fill = box_fill(boxes, masks)
    assert fill[:3].tolist() == [1.0, 0.5, 0.0] and math.isnan(fill[3])
    masks[0, 0, 0] = 1.0  # outside its box: not counted
    assert box_fill(boxes[:1], masks[:1]).item() == 1.0
    assert box_fill(boxes[1:2], masks[1:2], threshold=0.3).item() == 1.0
    assert box_fill(torch.zeros(0, 4), torch.zeros(0, 16, 16)).shape == (0,)


def test_fill_meter_averages_confident_detections_and_the_non_crowd_ground_truth():
    boxes, masks = _masks()
    meter = FillMeter()
    assert all(math.isnan(v) for v in meter.result().values())  # nothing measured yet
    scores = torch.tensor([0.9, FILL_SCORE, 0.2, 0.8])  # the third is not confident, the fourth has no pixel
    preds = [{"boxes": boxes, "scores": scores, "labels": torch.ones(4, dtype=torch.long), "masks": masks}]
    gt_masks = (masks[:2] > 0.5).to(torch.uint8)
    targets = [{"boxes": boxes[:2], "masks": gt_masks, "iscrowd": torch.tensor([False, True])}]
    meter.update(targets, preds)
    assert meter.result() == {"detections": pytest.approx(75.0), "ground_truth": pytest.approx(100.0)}
    meter.update([{"image_id": 2}], [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "masks": None}])
    assert meter.result()["detections"] == pytest.approx(75.0)  # an image without detections changes nothing
    meter.reset()
    assert math.isnan(meter.result()["detections"])
