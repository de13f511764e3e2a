"""Losses for dense regression targets (depth) only: they take raw predictions, not logits.

With ``contract="regression"`` the depth losses of the catalogue are ``rmse``, ``l1``, ``ssim`` (see
``structural.py``; ``data_range=None`` adapts it to metres) and ``berhu`` below.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from losslab.losses._base import MaskInputs, PixelLoss
from losslab.losses.registry import register_loss

__all__ = ["BerHuLoss"]


@register_loss(
    "berhu",
    kind="pixel",
    acts_on="values",
    description="reverse Huber: L1 for small errors, scaled L2 above c = 0.2 x the largest error",
    source="Laina et al. 2016, 'Deeper depth prediction with fully convolutional residual networks'",
    contracts=("regression",),
)
class BerHuLoss(PixelLoss):
    """The reverse Huber (berHu) loss on ``e = prediction − target``, averaged over valid pixels::

        B(e) = |e|               if |e| <= c
               (e² + c²) / (2c)  otherwise

    with ``c = fraction · max |e|`` over each instance's valid pixels (Laina et al. take 1/5 of the
    batch maximum; here each instance has its own c, since instances are the unit of the contract).
    The gradient also flows through ``c`` (to the pixel with the largest error), as in the
    paper's TensorFlow formulation; B is continuous at ``|e| = c``.

    Args:
        c: the fraction of the largest absolute error where L1 turns into L2 (0.2).

    Shape:
        prediction, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; output scalar or ``(N,)``.
    """

    def __init__(self, c: float = 0.2, **base: Any):
        super().__init__(**({"contract": "regression"} | base))
        if not 0 < c <= 1:
            raise ValueError(f"berhu c is a fraction of the largest error in (0, 1], got {c}")
        self.c = float(c)

    def per_pixel(self, x: MaskInputs) -> Tensor:
        err = (x.p - x.target).abs()
        c = self.c * x.masked(err).amax(dim=(1, 2), keepdim=True)
        safe_c = c.clamp_min(torch.finfo(err.dtype).tiny)
        quadratic = (err * err + c * c) / (2 * safe_c)
        return torch.where(err <= c, err, quadratic)

    def extra_repr(self) -> str:
        return f"c={self.c}, " + super().extra_repr()
