"""The Generalized Dice loss of Sudre et al. (2017): a Dice over the object and the background
classes of each instance, each class weighted by the inverse of its (squared) target volume, so a
small object counts as much as its large background.

On one foreground channel alone the weight cancels between numerator and denominator (up to the
smoothing), leaving plain Dice, and an empty target gets weight zero and no loss at all: MONAI's
``GeneralizedDiceLoss(batch=False)`` on ``(N, 1, H, W)`` is ``1 − (2·TP·w + s)/((Σp + Σg)·w + s)``
with ``w = 1/(Σg)²``, i.e. Dice with smooth ``s·(Σg)²``, and 0 for an empty target whatever the
prediction. The meaningful binary form, the paper's two-class one, is used here: the background
``(1 − p, 1 − g)`` is the second class.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss
from losslab.losses._functional import check_number
from losslab.losses.registry import register_loss

__all__ = ["W_TYPES", "GeneralizedDiceLoss", "class_weights", "generalized_dice_score"]

#: How a class's target volume ``G`` becomes its weight: ``1/G²``, ``1/G`` or 1 (MONAI's ``w_type``).
W_TYPES = ("square", "simple", "uniform")


@torch.no_grad()
def class_weights(volume: Tensor, w_type: str = "square") -> Tensor:
    """Per-class weights from target volumes, MONAI's rule for an absent class: a class with volume 0
    (an infinite weight) gets the largest finite weight of its instance, or 0 if it has none.

    Shape:
        - volume: ``(N, C)``, each class's ``Σg`` over the valid pixels.
        - output: ``(N, C)``.
    """
    if w_type == "uniform":
        return torch.ones_like(volume)
    w = volume.reciprocal() if w_type == "simple" else (volume * volume).reciprocal()
    infinite = torch.isinf(w)
    w = w.masked_fill(infinite, 0.0)
    return w + infinite * w.amax(dim=1, keepdim=True)


def generalized_dice_score(tp: Tensor, union: Tensor, weight: Tensor, smooth: float = 1e-5) -> Tensor:
    """Generalized Dice ``(2·Σ_c w_c·TP_c + s) / (Σ_c w_c·(Σp_c + Σg_c) + s)``.

    Shape:
        - tp, union, weight: ``(N, C)``: ``TP_c = Σp_c·g_c``, ``union = Σp_c + Σg_c``, ``w_c``.
        - output: ``(N,)``.
    """
    numer = 2.0 * (weight * tp).sum(dim=1) + smooth
    denom = (weight * union).sum(dim=1) + smooth
    if smooth > 0:
        return numer / denom
    # smooth = 0 and every weight 0 (no valid pixel): 0/0, taken as a perfect score (loss 0, no gradient).
    empty = denom <= 0
    return torch.where(empty, torch.ones_like(numer), numer / torch.where(empty, torch.ones_like(denom), denom))


@register_loss(
    "generalized_dice",
    kind="region",
    acts_on="probabilities",
    description="generalized Dice loss over object and background, each weighted by 1/(Σg)² (w_type) per instance",
    source="Sudre et al. 2017, Generalised Dice overlap (as MONAI GeneralizedDiceLoss on [1 − p, p])",
)
class GeneralizedDiceLoss(MaskLoss):
    """``1 − GDL`` per instance over two classes, the background ``(1 − p, 1 − g)`` and the object
    ``(p, g)``, with weights ``w_c = 1/G_c²`` (``w_type="square"``), ``G_c`` the class's target volume.

    The value of one instance is MONAI's ``GeneralizedDiceLoss(include_background=True, w_type,
    smooth_nr=smooth, smooth_dr=smooth, batch=False, reduction="none")`` on the two-channel
    probabilities ``[1 − p, p]`` against ``[1 − g, g]`` (equivalently ``softmax=True`` on the logits
    ``[0, z]`` and ``to_onehot_y=True`` on a binary target). MONAI's weights are float32; losslab's
    are in the input dtype. An empty (or full) target has an absent class, which takes the other
    class's weight (MONAI's rule), so the loss still trains the prediction towards the empty mask.

    With ``valid``, only valid pixels exist: both classes' sums run over them (invalid pixels are
    zeroed in ``p``, ``g``, ``1 − p`` and ``1 − g``). An instance without a valid pixel has both weights
    0 and contributes zero.

    Args:
        w_type: ``"square"`` (``1/G²``, Sudre's), ``"simple"`` (``1/G``) or ``"uniform"`` (1).
        smooth: ``s`` >= 0 added to numerator and denominator (MONAI's 1e-5).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; sums over each instance's valid pixels.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, w_type: str = "square", smooth: float = 1e-5, **base: Any):
        super().__init__(**base)
        if w_type not in W_TYPES:
            raise ValueError(f"w_type of {self.loss_name} must be one of {W_TYPES}, got {w_type!r}")
        self.w_type = w_type
        self.smooth = check_number(self.loss_name, "smooth", smooth, low=0.0)

    def per_instance(self, x: MaskInputs) -> Tensor:
        bg_p, bg_g = x.masked(1.0 - x.p), x.masked(1.0 - x.target)
        dims = (1, 2)
        sum_bg_p, sum_bg_g = bg_p.sum(dim=dims), bg_g.sum(dim=dims)
        tp = torch.stack([(bg_p * bg_g).sum(dim=dims), x.tp], dim=1)
        union = torch.stack([sum_bg_p + sum_bg_g, x.sum_p + x.sum_g], dim=1)
        weight = class_weights(torch.stack([sum_bg_g, x.sum_g], dim=1).detach(), self.w_type)
        return 1.0 - generalized_dice_score(tp, union, weight, self.smooth)

    def extra_repr(self) -> str:
        return f"w_type={self.w_type!r}, smooth={self.smooth}, " + super().extra_repr()
