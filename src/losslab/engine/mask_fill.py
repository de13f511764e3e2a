"""How much of its box each mask covers: the measurement that tells the two ways masks collapse.

A mask loss can leave the detector working and the masks useless in two ways, which mask AP alone
does not tell apart: the masks fill their boxes (the region losses' saturation: every probability
near 1 inside the crop) or they are empty (no pixel above the threshold, e.g. when the prototypes
die and every mask logit sits at 0). ``box_fill`` measures the fraction of each box's pixels whose
mask is above the threshold; ``FillMeter`` averages it over the confident detections of an
evaluation and, for reference, over the ground truth (elongated objects fill a fraction of their
box: the synthetic cigarette butts about half of it at 128 px).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["FILL_SCORE", "FillMeter", "box_fill"]

#: Detections scoring at least this count towards the detections' fill (the confident ones).
FILL_SCORE = 0.5


def box_fill(boxes: Tensor, masks: Tensor, threshold: float = 0.5) -> Tensor:
    """The fraction of each box's pixels (pixel centres inside the box) where its mask exceeds
    ``threshold``; NaN for a box that holds no pixel centre.

    Shape:
        - boxes ``(n, 4)`` xyxy in the masks' pixels, masks ``(n, H, W)``; output ``(n,)`` in [0, 1].
    """
    n, H, W = masks.shape
    if n == 0:
        return masks.new_zeros(0, dtype=torch.float32)
    b = boxes.float()
    xs = torch.arange(W, device=masks.device, dtype=torch.float32) + 0.5
    ys = torch.arange(H, device=masks.device, dtype=torch.float32) + 0.5
    in_x = (xs >= b[:, 0:1]) & (xs < b[:, 2:3])  # (n, W)
    in_y = (ys >= b[:, 1:2]) & (ys < b[:, 3:4])  # (n, H)
    inside = in_y[:, :, None] & in_x[:, None, :]
    area = inside.sum(dim=(1, 2)).float()
    covered = ((masks > threshold) & inside).sum(dim=(1, 2)).float()
    return torch.where(area > 0, covered / area.clamp_min(1.0), torch.full_like(area, math.nan))


class FillMeter:
    """Mean ``box_fill`` of the confident detections and of the ground truth over an evaluation.

    ``update(targets, preds)`` per batch (the evaluator's inputs: boxes in input pixels, masks at
    the input size), then ``result()``: ``{"detections": %, "ground_truth": %}``, NaN where there
    was nothing to measure (no detection scoring ``FILL_SCORE``, no ground-truth mask).
    """

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._sums = {"detections": [0.0, 0], "ground_truth": [0.0, 0]}

    def _add(self, key: str, fill: Tensor) -> None:
        kept = fill[torch.isfinite(fill)]
        self._sums[key][0] += float(kept.sum())
        self._sums[key][1] += int(kept.numel())

    def update(self, targets: Sequence[Mapping[str, Any]], preds: Sequence[Mapping[str, Tensor]]) -> None:
        for target, pred in zip(targets, preds, strict=True):
            if pred.get("masks") is not None:
                keep = pred["scores"] >= FILL_SCORE
                self._add("detections", box_fill(pred["boxes"][keep], pred["masks"][keep], self.threshold))
            if target.get("masks") is None or target.get("boxes") is None:
                continue
            masks, boxes = torch.as_tensor(target["masks"]), torch.as_tensor(target["boxes"])
            if masks.dim() == 3 and masks.shape[0]:
                crowd = torch.as_tensor(target.get("iscrowd", torch.zeros(masks.shape[0]))).bool()
                self._add("ground_truth", box_fill(boxes[~crowd], masks[~crowd].float(), 0.5))

    def result(self) -> dict[str, float]:
        return {k: 100.0 * s / n if n else math.nan for k, (s, n) in self._sums.items()}
