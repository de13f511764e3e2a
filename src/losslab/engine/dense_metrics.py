"""Dense (one mask per image, optional depth) evaluation over a whole validation set.

``DenseEvaluator`` follows the ``reset / process / evaluate`` pattern of ``InstanceEvaluator``.
The mask metrics come in two flavours, both in percent:

* ``IoU``, ``Dice``, ``BoundaryIoU``: dataset-level ratios, the intersections and unions summed
  over every pixel of every image first (large objects weigh more; an empty image adds nothing).
* ``IoU_image``, ``Dice_image``, ``BoundaryIoU_image``: the per-image values, averaged over
  images (every image weighs the same). An image where prediction and target are both empty
  scores 100: predicting "nothing here" there is right.

Depth metrics are computed over the pixels with a valid target depth (finite and > 0), pooled
over the dataset: ``RMSE`` in the target's unit (metres) and ``AbsRel`` = mean |d - d*| / d*
(a fraction, not percent). Boundary IoU uses ``losslab.engine.boundary_iou`` (width 2% of the
image diagonal).

Everything is measured at the dataset's input resolution, on the letterboxed frame: the padding
is background for the mask (a prediction there is a false positive) and has depth 0, so it
never enters the depth errors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from losslab.engine.boundary_iou import boundary_iou_counts

__all__ = ["DenseEvaluator"]


def _as_nchw(t: Any, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.dim() == 3:
        t = t[:, None]
    if t.dim() != 4 or t.shape[1] != 1:
        raise ValueError(f"{name} has shape {tuple(t.shape)}: expected (B, 1, H, W)")
    return t.detach()


def _ratio(num: float, den: float) -> float:
    return 100.0 * num / den if den > 0 else 100.0  # nothing predicted and nothing there: agreement


class DenseEvaluator:
    """Mask IoU / Dice / Boundary IoU and depth RMSE / AbsRel of a dense model over a dataset.

    Args:
        threshold: probability above which a pixel counts as mask (applied to ``sigmoid(logits)``).
        dilation_ratio: boundary width as a fraction of the image diagonal (Boundary IoU).

    Shape:
        ``process(targets, outputs)``: ``targets["mask"]`` ``(B, 1, H, W)`` in {0, 1},
        ``outputs["mask"]`` logits ``(B, 1, H, W)``; optional ``"depth"`` ``(B, 1, H, W)`` in both.
    """

    def __init__(self, threshold: float = 0.5, dilation_ratio: float = 0.02):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold={threshold} must lie in (0, 1): it applies to probabilities")
        self.threshold = threshold
        self.dilation_ratio = dilation_ratio
        self.reset()

    def reset(self) -> None:
        """Forget everything processed so far."""
        self._sums = dict.fromkeys(("inter", "union", "pred", "gt", "b_inter", "b_union"), 0.0)
        self._per_image: dict[str, list[float]] = {"IoU": [], "Dice": [], "BoundaryIoU": []}
        self._depth = {"sq": 0.0, "absrel": 0.0, "n": 0.0}
        self._has_depth = False

    def process(self, targets: dict[str, Tensor], outputs: dict[str, Tensor] | Tensor) -> None:
        """Add one batch (targets as batched by the default collate, the model's eval outputs)."""
        if isinstance(outputs, Tensor):
            outputs = {"mask": outputs}
        if "mask" not in outputs or "mask" not in targets:
            raise ValueError(f"outputs keys {sorted(outputs)} and targets keys {sorted(targets)} must both have 'mask'")
        logits = _as_nchw(outputs["mask"], "outputs['mask']")
        target = _as_nchw(targets["mask"], "targets['mask']").to(logits.device)
        if logits.shape != target.shape:
            raise ValueError(
                f"outputs['mask'] {tuple(logits.shape)} and targets['mask'] {tuple(target.shape)} differ; "
                "evaluate at the dataset's input size"
            )
        self._process_mask(torch.sigmoid(logits.float())[:, 0] > self.threshold, target[:, 0] > 0.5)
        if "depth" in outputs:
            if "depth" not in targets:
                raise ValueError("the model predicts depth but the targets have none: use a dataset with depth")
            self._process_depth(_as_nchw(outputs["depth"], "outputs['depth']"), _as_nchw(targets["depth"], "depth"))

    def _process_mask(self, pred: Tensor, gt: Tensor) -> None:
        inter = (pred & gt).sum(dim=(1, 2)).double()
        union = (pred | gt).sum(dim=(1, 2)).double()
        n_pred, n_gt = pred.sum(dim=(1, 2)).double(), gt.sum(dim=(1, 2)).double()
        b_inter, b_union = boundary_iou_counts(pred, gt, self.dilation_ratio)
        for key, v in zip(
            ("inter", "union", "pred", "gt", "b_inter", "b_union"),
            (inter, union, n_pred, n_gt, b_inter, b_union),
            strict=True,
        ):
            self._sums[key] += float(v.sum())
        for i, u, p, g, bi, bu in zip(
            *(t.tolist() for t in (inter, union, n_pred, n_gt, b_inter, b_union)), strict=True
        ):
            self._per_image["IoU"].append(_ratio(i, u))
            self._per_image["Dice"].append(_ratio(2 * i, p + g))
            self._per_image["BoundaryIoU"].append(_ratio(bi, bu))

    def _process_depth(self, pred: Tensor, gt: Tensor) -> None:
        if pred.shape != gt.shape:
            raise ValueError(f"outputs['depth'] {tuple(pred.shape)} and targets['depth'] {tuple(gt.shape)} differ")
        pred, gt = pred.double(), gt.to(pred.device).double()
        valid = torch.isfinite(gt) & (gt > 0)  # 0 marks a pixel without a measurement
        err = (pred - gt)[valid]
        self._depth["sq"] += float((err**2).sum())
        self._depth["absrel"] += float((err.abs() / gt[valid]).sum())
        self._depth["n"] += float(valid.sum())
        self._has_depth = True

    def evaluate(self) -> dict[str, dict[str, float]]:
        """``{"mask": {...}[, "depth": {"RMSE", "AbsRel"}]}`` over everything processed."""
        if not self._per_image["IoU"]:
            raise ValueError("DenseEvaluator.evaluate() before any process(): no image to evaluate")
        s = self._sums
        mask = {
            "IoU": _ratio(s["inter"], s["union"]),
            "Dice": _ratio(2 * s["inter"], s["pred"] + s["gt"]),
            "BoundaryIoU": _ratio(s["b_inter"], s["b_union"]),
        }
        for key, values in self._per_image.items():
            mask[f"{key}_image"] = sum(values) / len(values)
        out = {"mask": mask}
        if self._has_depth:
            n = self._depth["n"]
            nan = float("nan")  # no valid depth pixel at all: nothing to measure
            out["depth"] = {
                "RMSE": (self._depth["sq"] / n) ** 0.5 if n else nan,
                "AbsRel": self._depth["absrel"] / n if n else nan,
            }
        return out
