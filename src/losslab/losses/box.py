"""Box losses for the detection heads: ``loss(pred (M, D), target (M, D))``.

``smooth_l1`` acts on encoded offsets (any ``D``); ``giou``, ``diou`` and ``ciou`` act on boxes in
``(x1, y1, x2, y2)`` and follow ``torchvision.ops`` (same formulas, same ``eps``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.losses._base import ReducedLoss, hook, reduce
from losslab.losses.registry import register_loss

__all__ = ["BoxLoss", "CIoULoss", "DIoULoss", "GIoULoss", "SmoothL1Loss", "box_iou_terms"]

_EPS = 1e-7  # torchvision's default eps for the IoU losses


class BoxLoss(ReducedLoss):
    """Base of the box contract: ``loss(pred, target)`` → one value per box, then reduced.

    Subclasses set ``acts_on`` (``"offsets"`` or ``"boxes"``) and implement ``per_box``.
    ``check_inputs=False`` (a constructor argument) skips the value checks (finite, ``x2 >= x1``),
    which cost a device sync.

    Shape:
        - pred, target: ``(M, D)`` (``D = 4`` for boxes, ``x1, y1, x2, y2``).
        - output: scalar for ``"mean"``/``"sum"``; ``(M,)`` for ``"none"``. ``M = 0`` gives a zero
          that back-propagates.
    """

    loss_name = "?"
    acts_on = "boxes"

    def check(self, pred: Tensor, target: Tensor) -> None:
        """Raise ``ValueError`` for inputs this loss cannot take."""
        name = self.loss_name
        if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
            raise ValueError(f"{name}: pred and target must be torch tensors")
        if not pred.is_floating_point() or not target.is_floating_point():
            raise ValueError(f"{name}: pred and target must be float tensors, got {pred.dtype} and {target.dtype}")
        if pred.shape != target.shape:
            raise ValueError(
                f"{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape"
            )
        if pred.dim() != 2 or (self.acts_on == "boxes" and pred.shape[1] != 4):
            want = "(M, 4) boxes x1, y1, x2, y2" if self.acts_on == "boxes" else "(M, D) offsets"
            raise ValueError(f"{name}: expected {want}, got shape {tuple(pred.shape)}")
        if not self.check_inputs or pred.numel() == 0:
            return
        # One sync for all value checks: a sum is finite iff every element is (barring an overflow
        # past 3e38), and the smallest width/height says whether any box is flipped.
        if self.acts_on != "boxes":
            if math.isfinite(float(pred.detach().sum() + target.detach().sum())):
                return
            what = "pred" if not math.isfinite(float(pred.detach().sum())) else "target"
            raise ValueError(f"{name}: {what} contains NaN or inf values")
        stats = [pred.detach().sum(), target.detach().sum()]
        stats += [(b[:, 2:] - b[:, :2]).detach().amin() for b in (pred, target)]
        values = torch.stack(stats).tolist()
        for value, what in zip(values[:2], ("pred", "target"), strict=True):
            if not math.isfinite(value):
                raise ValueError(f"{name}: {what} contains NaN or inf values")
        for value, what in zip(values[2:], ("pred", "target"), strict=True):
            if value < 0:
                raise ValueError(
                    f"{name}: {what} has boxes with x2 < x1 or y2 < y1; boxes must be (x1, y1, x2, y2) — "
                    "convert (x, y, w, h) with torchvision.ops.box_convert(b, 'xywh', 'xyxy')"
                )

    @hook
    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        self.check(pred, target)
        return reduce(self.per_box(pred, target), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


@register_loss(
    "smooth_l1",
    kind="box",
    acts_on="offsets",
    description="smooth L1 on encoded box offsets, summed over coordinates (SSD, YOLACT)",
    source="Girshick 2015, 'Fast R-CNN'; torch.nn.functional.smooth_l1_loss",
    contracts=("box",),
)
class SmoothL1Loss(BoxLoss):
    """Smooth L1 (``0.5 x²/β`` below ``β``, ``|x| − 0.5β`` above) per box, summed over its ``D``
    coordinates: ``"mean"`` is then YOLACT's ``smooth_l1(reduction="sum") / num_pos``.

    Args:
        beta: where the quadratic part ends (1.0); ``beta=0`` is L1.

    Shape:
        pred, target: ``(M, D)``; output scalar or ``(M,)``.
    """

    acts_on = "offsets"

    def __init__(self, beta: float = 1.0, **base: Any):
        super().__init__(**base)
        if beta < 0:
            raise ValueError(f"smooth_l1 beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred, target, reduction="none", beta=self.beta).sum(dim=1)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        self.check(pred, target)
        if self.reduction == "none":
            return self.per_box(pred, target)
        # torch's fused sum reduction: no (M, D) intermediate for the mean of per-box sums.
        total = F.smooth_l1_loss(pred, target, reduction="sum", beta=self.beta)
        return total if self.reduction == "sum" else total / max(pred.shape[0], 1)


def box_iou_terms(pred: Tensor, target: Tensor, eps: float = _EPS) -> dict[str, Tensor]:
    """Element-wise IoU and the enclosing-box quantities the IoU losses share.

    Returns a dict with ``iou``, ``union``, ``enclose_area`` (area of the smallest enclosing box),
    ``diag2`` (its squared diagonal, plus eps) and ``centre2`` (squared centre distance).

    Shape:
        pred, target: ``(M, 4)`` xyxy; every output ``(M,)``.
    """
    x1, y1, x2, y2 = pred.unbind(dim=1)
    gx1, gy1, gx2, gy2 = target.unbind(dim=1)
    inter_w = (torch.min(x2, gx2) - torch.max(x1, gx1)).clamp_min(0)
    inter_h = (torch.min(y2, gy2) - torch.max(y1, gy1)).clamp_min(0)
    inter = inter_w * inter_h
    union = (x2 - x1) * (y2 - y1) + (gx2 - gx1) * (gy2 - gy1) - inter
    iou = inter / (union + eps)
    cw = torch.max(x2, gx2) - torch.min(x1, gx1)
    ch = torch.max(y2, gy2) - torch.min(y1, gy1)
    centre2 = ((x1 + x2 - gx1 - gx2) / 2) ** 2 + ((y1 + y2 - gy1 - gy2) / 2) ** 2
    return {"iou": iou, "union": union, "enclose_area": cw * ch, "diag2": cw**2 + ch**2 + eps, "centre2": centre2}


@register_loss(
    "giou",
    kind="box",
    acts_on="boxes",
    description="generalized IoU loss 1 - IoU + (C - U)/C on xyxy boxes",
    source="Rezatofighi et al. 2019; torchvision.ops.generalized_box_iou_loss",
    contracts=("box",),
)
class GIoULoss(BoxLoss):
    """``1 − GIoU``: ``1 − IoU + (|C| − |A ∪ B|) / |C|``, C the smallest enclosing box.

    Shape:
        pred, target: ``(M, 4)`` xyxy; output scalar or ``(M,)``.
    """

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        t = box_iou_terms(pred, target)
        return 1 - t["iou"] + (t["enclose_area"] - t["union"]) / (t["enclose_area"] + _EPS)


@register_loss(
    "diou",
    kind="box",
    acts_on="boxes",
    description="distance IoU loss 1 - IoU + centre distance² / enclosing diagonal²",
    source="Zheng et al. 2020; torchvision.ops.distance_box_iou_loss",
    contracts=("box",),
)
class DIoULoss(BoxLoss):
    """``1 − IoU + ρ²(centres) / c²``, c the diagonal of the smallest enclosing box.

    Shape:
        pred, target: ``(M, 4)`` xyxy; output scalar or ``(M,)``.
    """

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        t = box_iou_terms(pred, target)
        return 1 - t["iou"] + t["centre2"] / t["diag2"]


@register_loss(
    "ciou",
    kind="box",
    acts_on="boxes",
    description="complete IoU loss: DIoU plus an aspect-ratio consistency term",
    source="Zheng et al. 2020; torchvision.ops.complete_box_iou_loss",
    contracts=("box",),
)
class CIoULoss(BoxLoss):
    """``DIoU + α v`` with ``v = 4/π² (atan(w_g/h_g) − atan(w/h))²`` and the trade-off
    ``α = v / (1 − IoU + v)`` held constant (no gradient), as torchvision.

    Shape:
        pred, target: ``(M, 4)`` xyxy; output scalar or ``(M,)``.
    """

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        t = box_iou_terms(pred, target)
        diou = 1 - t["iou"] + t["centre2"] / t["diag2"]
        w, h = pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1]
        wg, hg = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1]
        v = (4 / math.pi**2) * (torch.atan(wg / hg) - torch.atan(w / h)) ** 2
        with torch.no_grad():
            alpha = v / (1 - t["iou"] + v + _EPS)
        return diou + alpha * v
