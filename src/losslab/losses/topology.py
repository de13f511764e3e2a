"""Topology losses: soft clDice (Shit et al. 2021), an overlap measured on soft skeletons, so that a
thin structure counts by its centre line rather than by its area, and its sum with the soft Dice.

The soft skeleton is the iterated soft morphology of the clDice authors' code, as MONAI's
``soft_skel``: erosion is a min-pool over the 3-pixel cross (two 1-D min-pools), dilation a 3x3
max-pool, opening the two in turn, and each of ``iter_ + 1`` rounds adds what the opening removes.
Pooling pads with ``-inf`` (it never wins), so a mask that fills the image has an empty skeleton.

With ``valid``, invalid pixels are set to zero in ``p`` and ``g`` before the skeletons and the
sums: they are background, and get no gradient.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss
from losslab.losses._functional import check_number
from losslab.losses.region import dice_score
from losslab.losses.registry import register_loss

__all__ = ["ClDiceLoss", "DiceClDiceLoss", "cldice_score", "soft_dilate", "soft_erode", "soft_skeleton"]


# --- soft morphology (MONAI's monai/losses/cldice.py, 2-D) -------------------------------------------


def soft_erode(img: Tensor) -> Tensor:
    """Soft erosion: the minimum over each pixel's 3-pixel vertical and horizontal lines (a cross).

    Shape:
        img, output: ``(N, C, H, W)``.
    """
    p1 = -F.max_pool2d(-img, (3, 1), (1, 1), (1, 0))
    p2 = -F.max_pool2d(-img, (1, 3), (1, 1), (0, 1))
    return torch.min(p1, p2)


def soft_dilate(img: Tensor) -> Tensor:
    """Soft dilation: the maximum over each pixel's 3x3 neighbourhood.

    Shape:
        img, output: ``(N, C, H, W)``.
    """
    return F.max_pool2d(img, (3, 3), (1, 1), (1, 1))


def soft_skeleton(img: Tensor, iter_: int) -> Tensor:
    """The soft skeleton of Shit et al. (2021), ``iter_`` erosions deep (MONAI's ``soft_skel``).

    Values stay in [0, 1] for inputs in [0, 1]; a binary mask gives a binary skeleton inside it.

    Shape:
        img, output: ``(N, C, H, W)``.
    """
    skel = F.relu(img - soft_dilate(soft_erode(img)))
    for _ in range(iter_):
        img = soft_erode(img)
        delta = F.relu(img - soft_dilate(soft_erode(img)))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def cldice_score(p: Tensor, g: Tensor, iter_: int, smooth: float = 1.0, eps: float = 0.0) -> Tensor:
    """Soft clDice ``2·Tprec·Tsens / (Tprec + Tsens + eps)`` per instance.

    ``Tprec = (Σ S(p)·g + s) / (Σ S(p) + s)`` (how much of the predicted skeleton lies in the target)
    and ``Tsens = (Σ S(g)·p + s) / (Σ S(g) + s)`` (how much of the target's skeleton is predicted),
    ``S`` the soft skeleton. The target's skeleton is computed without gradient.

    Shape:
        - p, g: ``(N, H, W)`` in [0, 1].
        - output: ``(N,)``.
    """
    skel_p = soft_skeleton(p.unsqueeze(1), iter_).squeeze(1)
    with torch.no_grad():
        skel_g = soft_skeleton(g.unsqueeze(1), iter_).squeeze(1)
    dims = (1, 2)
    tprec = ((skel_p * g).sum(dim=dims) + smooth) / (skel_p.sum(dim=dims) + smooth)
    tsens = ((skel_g * p).sum(dim=dims) + smooth) / (skel_g.sum(dim=dims) + smooth)
    return 2.0 * tprec * tsens / (tprec + tsens + eps)


# --- losses --------------------------------------------------------------------------------------------


def _iterations(loss: str, value: Any) -> int:
    v = check_number(loss, "iter_", value, low=0.0)
    if v != int(v):
        raise ValueError(f"iter_ of {loss} must be a whole number of erosions, got {value!r}")
    return int(v)


@register_loss(
    "cldice",
    kind="structural",
    acts_on="probabilities",
    description="soft clDice 1 − 2·Tprec·Tsens/(Tprec + Tsens) on soft skeletons (iter_ erosions) per instance",
    source="Shit et al. 2021, clDice (as MONAI SoftclDiceLoss, sigmoid=True, one value per instance)",
)
class ClDiceLoss(MaskLoss):
    """``1 − clDice`` per instance (``cldice_score``): the overlap of each mask with the other's soft
    skeleton, for thin, tubular structures.

    The value of one instance is MONAI's ``SoftclDiceLoss(iter_, smooth_nr=smooth, smooth_dr=smooth,
    smooth=eps, sigmoid=True, reduction="none")`` on that instance as a ``(1, 1, H, W)`` batch (MONAI
    gives one value per batch item, summed over channels and pixels). MONAI's ``smooth`` (``eps``
    here) defaults to 1e-4, which leaves ``1 − 2/(2 + 1e-4) = 5e-5`` at a perfect prediction; losslab
    defaults it to 0 (safe: ``Tprec, Tsens > 0`` for ``smooth > 0``) so a perfect prediction is 0.

    Edge cases, as MONAI: an empty target has an empty skeleton (``Tsens = 1``; the loss pushes the
    predicted skeleton down); a target that fills the mask also has an empty skeleton (nothing is
    removed by the opening), so ``Tsens = 1`` and, every predicted skeleton pixel lying in the target,
    ``Tprec = 1``: the loss is 0 whatever the prediction. Combine it with a region loss (``dice_cldice``).

    With ``valid``, invalid pixels are zeroed in ``p`` and ``g`` before the skeletons and sums.

    Args:
        iter_: erosion rounds of the soft skeleton, a whole number >= 0 (3 in MONAI and the paper's
            code); it should reach the half-width of the thickest structure.
        smooth: ``s`` > 0 added to numerator and denominator of ``Tprec`` and ``Tsens``.
        eps: added to the harmonic mean's denominator, >= 0 (MONAI's ``smooth``; 1e-4 reproduces
            MONAI's default).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, iter_: int = 3, smooth: float = 1.0, eps: float = 0.0, **base: Any):
        super().__init__(**base)
        self.iter_ = _iterations(self.loss_name, iter_)
        self.smooth = check_number(self.loss_name, "smooth", smooth, low=0.0, low_open=True)
        self.eps = check_number(self.loss_name, "eps", eps, low=0.0)

    def cldice(self, x: MaskInputs) -> Tensor:
        """``1 − clDice`` per instance, ``(N,)``."""
        return 1.0 - cldice_score(x.p_valid, x.g_valid, self.iter_, self.smooth, self.eps)

    def per_instance(self, x: MaskInputs) -> Tensor:
        return self.cldice(x)

    def extra_repr(self) -> str:
        return f"iter_={self.iter_}, smooth={self.smooth}, eps={self.eps}, " + super().extra_repr()


def _dice_cldice_simplify(params: dict[str, Any]) -> tuple[str, str] | None:
    s = float(params["smooth"])
    if params["alpha"] == 0:
        return f"dice(smooth={s:g})", "alpha=0 leaves only the Dice term"
    if params["alpha"] == 1:
        it, eps = int(params["iter_"]), float(params["eps"])
        return f"cldice(iter_={it}, smooth={s:g}, eps={eps:g})", "alpha=1 leaves only the clDice term"
    return None


@register_loss(
    "dice_cldice",
    kind="structural",
    acts_on="probabilities",
    description="(1 − alpha)·soft Dice loss + alpha·clDice loss per instance (the clDice paper's training loss)",
    source="Shit et al. 2021, clDice (as MONAI SoftDiceclDiceLoss, sigmoid=True, one value per instance)",
    simplify=_dice_cldice_simplify,
)
class DiceClDiceLoss(ClDiceLoss):
    """``(1 − alpha)·dice + alpha·cldice`` per instance; the Dice is losslab's ``dice(smooth=smooth)``
    (``1 − (2Σpg + s)/(Σp + Σg + s)``, MONAI's ``DiceLoss(smooth_nr=s, smooth_dr=s)``).

    The value of one instance is MONAI's ``SoftDiceclDiceLoss(iter_, alpha, smooth_nr=smooth,
    smooth_dr=smooth, smooth=eps, sigmoid=True)`` on that instance as a ``(1, 1, H, W)`` batch. (On a
    batch, MONAI's ``reduction="none"`` broadcasts its Dice ``(B, 1, 1, 1)`` against its clDice
    ``(B,)``; its ``"mean"`` is the mean of losslab's per-instance values.)

    With ``valid``, invalid pixels are zeroed in ``p`` and ``g`` (both terms).

    Args:
        iter_, smooth, eps: as ``cldice``.
        alpha: weight of the clDice term in [0, 1].

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, iter_: int = 3, alpha: float = 0.5, smooth: float = 1.0, eps: float = 0.0, **base: Any):
        super().__init__(iter_=iter_, smooth=smooth, eps=eps, **base)
        self.alpha = check_number(self.loss_name, "alpha", alpha, low=0.0, high=1.0)

    def per_instance(self, x: MaskInputs) -> Tensor:
        dice = 1.0 - dice_score(x.tp, x.sum_p, x.sum_g, self.smooth)
        return (1.0 - self.alpha) * dice + self.alpha * self.cldice(x)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, " + super().extra_repr()
