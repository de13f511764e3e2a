"""The Hausdorff distance-transform loss of Karimi & Salcudean (2019): the squared error of each
pixel weighted by how far it is from the boundary of the prediction and of the target, so that errors
far from either boundary (which make the Hausdorff distance) cost most.

The distance maps are MONAI's (``HausdorffDTLoss.distance_field``): for a binarised mask (``> 0.5``)
with both classes present, each pixel's Euclidean distance to the nearest pixel of the other class
(``edt(fg) + edt(bg)``, at least 1 everywhere); zero everywhere for a mask with one class only. They
are computed on the CPU with OpenCV's exact EDT, without gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss
from losslab.losses._functional import check_number, distance_to_zero
from losslab.losses.registry import register_loss

__all__ = ["HausdorffDTLoss", "distance_field"]


@torch.no_grad()
def distance_field(masks: Tensor, threshold: float = 0.5) -> Tensor:
    """MONAI's distance field of each binarised mask: ``edt(fg) + edt(bg)``, the distance of each
    pixel to the nearest pixel of the other class, in pixels; all zero for a mask without an object
    pixel or without a background pixel. One OpenCV call per mask and side, no Python pixel loops.

    Shape:
        - masks: ``(N, H, W)``; pixels ``> threshold`` are the object.
        - output: ``(N, H, W)``, on the device and dtype of ``masks``.
    """
    inside = (masks > threshold).cpu().numpy()
    n = inside.shape[0]
    field = np.zeros(inside.shape, dtype=np.float64)
    flat = inside.reshape(n, -1)
    both = flat.any(axis=1) & ~flat.all(axis=1)
    for i in np.flatnonzero(both):
        fg = inside[i].astype(np.uint8)
        field[i] = distance_to_zero(fg) + distance_to_zero(1 - fg)
    return torch.from_numpy(field).to(device=masks.device, dtype=masks.dtype)


@register_loss(
    "hausdorff_dt",
    kind="boundary",
    acts_on="probabilities",
    description="Hausdorff DT loss: mean of (p − g)² · (d_p^alpha + d_g^alpha), d the distance maps of p > 0.5 and g",
    source="Karimi & Salcudean 2019, Reducing the Hausdorff distance (as MONAI HausdorffDTLoss, sigmoid=True)",
)
class HausdorffDTLoss(MaskLoss):
    """``mean((p − g)² · (d_p^α + d_g^α))`` over each instance's valid pixels, ``d_p`` and ``d_g`` the
    distance fields (``distance_field``) of the prediction ``p > 0.5`` and the target ``g > 0.5``.

    Without ``valid`` the value of an instance is MONAI's ``HausdorffDTLoss(alpha, sigmoid=True,
    reduction="none")`` on ``(N, 1, H, W)``: ``batch=False`` averages each item over its pixels, and its
    ``include_background=False`` does not apply to a single channel. With ``valid``, invalid pixels
    are zeroed in ``p`` and ``g`` before the distance fields (they are background) and the sum over the
    valid pixels is divided by their number: MONAI's value on the zeroed masks times ``H·W / count``.
    Like the region losses it ignores ``area``; an instance without a valid pixel contributes zero.

    A mask with one class only has a zero distance field (as MONAI): with an empty (or full) target
    the weight is the prediction's field alone, and it is zero, leaving the instance without loss,
    when the prediction is also all background (or all object) after thresholding.

    Args:
        alpha: exponent of the distances, > 0 (2 in the paper and MONAI).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, alpha: float = 2.0, **base: Any):
        super().__init__(**base)
        self.alpha = check_number(self.loss_name, "alpha", alpha, low=0.0, low_open=True)

    def per_instance(self, x: MaskInputs) -> Tensor:
        p, g = x.p_valid, x.g_valid
        n = x.n
        fields = distance_field(torch.cat([p.detach(), g]))
        weight = fields[:n] ** self.alpha + fields[n:] ** self.alpha
        return ((p - g) ** 2 * weight).sum(dim=(1, 2)) / x.count

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, " + super().extra_repr()
