"""The boundary loss of Kervadec et al. (2019): the prediction weighted by the signed distance to
the target's boundary, so that a wrong pixel costs as much as it is far from the object."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss
from losslab.losses._functional import distance_to_zero
from losslab.losses.registry import register_loss

__all__ = ["BoundaryLoss", "signed_distance_map"]


@torch.no_grad()
def signed_distance_map(target: Tensor, threshold: float = 0.5) -> Tensor:
    """Kervadec's signed distance map of each binarised target, in pixels.

    ``φ = d_out`` outside the object (distance to the nearest object pixel, ≥ 1) and
    ``φ = −(d_in − 1)`` inside it (``d_in`` the distance to the nearest background pixel, so the
    object's own border pixels get 0), as ``one_hot2dist`` in the authors' code.

    Edge cases, where one of the two distances does not exist: an empty target gives ``φ = +1``
    everywhere (every predicted pixel is one pixel wrong, so the loss pushes all of ``p`` down) and a
    full target ``φ = −1`` everywhere (pushes ``p`` up). The authors' code gives 0 there, which
    leaves such instances without a gradient.

    Computed on the CPU with OpenCV (one exact EDT call per instance and side, no Python pixel
    loops), without grad; the result is on the target's device and dtype.

    Shape:
        - target: ``(N, H, W)``, values in [0, 1]; pixels ``>= threshold`` are the object.
        - output: ``(N, H, W)``.
    """
    inside = (target >= threshold).cpu().numpy()
    n, h, w = inside.shape
    phi = np.empty((n, h, w), dtype=np.float64)
    has_fg = inside.reshape(n, -1).any(axis=1)
    has_bg = ~inside.reshape(n, -1).all(axis=1)
    for i in range(n):
        if not has_fg[i]:
            phi[i] = 1.0
        elif not has_bg[i]:
            phi[i] = -1.0
        else:
            fg = inside[i].astype(np.uint8)
            d_out = distance_to_zero(1 - fg)  # zero at object pixels
            d_in = distance_to_zero(fg)  # zero at background pixels
            phi[i] = np.where(inside[i], 1.0 - d_in, d_out)
    return torch.from_numpy(phi).to(device=target.device, dtype=target.dtype)


@register_loss(
    "boundary",
    kind="boundary",
    acts_on="probabilities",
    description="boundary loss: mean of sigmoid(logits) times the signed distance to the target boundary",
    source="Kervadec et al. 2019, 'Boundary loss for highly unbalanced segmentation'",
)
class BoundaryLoss(MaskLoss):
    """Kervadec's boundary loss ``mean(p · φ)`` over each instance's valid pixels, φ the signed
    distance map of the binarised target (``signed_distance_map``; negative inside, positive
    outside, in pixels, computed over the whole mask before ``valid`` is applied).

    With ``shift=True`` (the default) the prediction-independent constant ``mean(min(φ, 0))`` is
    subtracted, i.e. the loss is ``mean(p·φ − min(φ, 0))``: the gradient is exactly Kervadec's, but
    the value is non-negative and zero at a perfect (binary) prediction, like every other loss in the
    catalogue. ``shift=false`` gives the paper's raw value, which is negative for good predictions.

    Values scale with the object size in pixels (distances are not normalised), as in the paper,
    where it is combined with a region loss (``"dice + 0.01*boundary"``).

    Args:
        shift: subtract ``mean(min(φ, 0))`` so the loss is ≥ 0 (same gradient).

    Shape:
        logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; output scalar or ``(N,)``.
    """

    def __init__(self, shift: bool = True, **base: Any):
        super().__init__(**base)
        self.shift = bool(shift)

    def per_instance(self, x: MaskInputs) -> Tensor:
        phi = signed_distance_map(x.target)
        per_pixel = x.p * phi
        if self.shift:
            per_pixel = per_pixel - phi.clamp(max=0.0)
        return x.mean(per_pixel)

    def extra_repr(self) -> str:
        return f"shift={self.shift}, " + super().extra_repr()
