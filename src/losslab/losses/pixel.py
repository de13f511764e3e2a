"""Pixel losses: each pixel's error on its own, averaged over an instance's valid pixels."""

from __future__ import annotations

from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss
from losslab.losses.registry import register_loss

__all__ = ["BCELoss", "MSELoss"]


@register_loss(
    "bce",
    kind="pixel",
    acts_on="logits",
    description="binary cross-entropy with logits (YOLACT's and Mask R-CNN's mask loss)",
    source="torch.nn.functional.binary_cross_entropy_with_logits",
)
class BCELoss(MaskLoss):
    """Binary cross-entropy with logits, averaged over each instance's valid pixels.

    Shape:
        logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; output scalar or ``(N,)``.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction=reduction)

    def per_instance(self, x: MaskInputs) -> Tensor:
        return x.mean(x.bce)


@register_loss(
    "mse",
    kind="pixel",
    acts_on="probabilities",
    description="mean squared error between sigmoid(logits) and the target",
    source="torch.nn.functional.mse_loss",
    contracts=("mask", "regression"),
)
class MSELoss(MaskLoss):
    """Mean squared error ``(p - g)²`` on probabilities (on values under the regression contract).

    Shape:
        logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; output scalar or ``(N,)``.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction=reduction)

    def per_instance(self, x: MaskInputs) -> Tensor:
        return x.mean((x.p - x.target) ** 2)
