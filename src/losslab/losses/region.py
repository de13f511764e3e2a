"""Region losses: overlap ratios (Dice, Jaccard, Tversky) over each instance's valid pixels.

Pure functions of the per-instance sums come first (smp's ``_functional.py`` pattern), then thin
modules. The sums ``TP = Σp·g``, ``Σp`` and ``Σg`` come from ``MaskInputs``, which caches them, so
a hybrid such as ``"dice + jaccard"`` computes them once. ``FP = Σp - TP`` and ``FN = Σg - TP``
(``Σp·(1 - g)`` and ``Σ(1 - p)·g`` without another pass over the pixels).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss, PixelLoss
from losslab.losses._functional import check_number, log_cosh, safe_pow
from losslab.losses.registry import register_loss

__all__ = [
    "DiceLoss",
    "FocalTverskyLoss",
    "JaccardLoss",
    "LogCoshDiceLoss",
    "PixelDiceLoss",
    "TverskyLoss",
    "dice_score",
    "jaccard_score",
    "tversky_score",
]


# --- pure functions ------------------------------------------------------------------------------


def dice_score(tp: Tensor, sum_p: Tensor, sum_g: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Dice ``(2·TP + s) / (Σp + Σg + s)`` (pass ``Σp²`` and ``Σg²`` for the squared form)."""
    return (2.0 * tp + smooth) / (sum_p + sum_g + smooth)


def jaccard_score(tp: Tensor, sum_p: Tensor, sum_g: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Jaccard (IoU) ``(TP + s) / (Σp + Σg - TP + s)``."""
    return (tp + smooth) / (sum_p + sum_g - tp + smooth)


def tversky_score(
    tp: Tensor, fp: Tensor, fn: Tensor, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0
) -> Tensor:
    """Tversky index ``(TP + s) / (TP + α·FP + β·FN + s)``; ``α = β = 0.5`` is Dice with smooth ``2s``."""
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


# --- losses --------------------------------------------------------------------------------------


def _smooth(loss: str, smooth: Any) -> float:
    return check_number(loss, "smooth", smooth, low=0.0)


@register_loss(
    "dice",
    kind="region",
    acts_on="probabilities",
    description="soft Dice loss 1 − (2Σpg + s)/(Σp + Σg + s) per instance; squared=true uses Σp² + Σg²",
    source="Milletari et al. 2016, V-Net (squared form: eq. 4 of the YOLACT++ loss survey)",
)
class DiceLoss(MaskLoss):
    """``1 - score`` per instance; subclasses change only ``score`` (smp's ``compute_score``).

    Args:
        smooth: ``s`` added to numerator and denominator, >= 0; keeps an empty mask and an empty
            prediction at loss 0 instead of 0/0.
        squared: use ``Σp² + Σg²`` in the denominator (Milletari's form).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; sums over each instance's valid pixels.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, smooth: float = 1.0, squared: bool = False, **base: Any):
        super().__init__(**base)
        self.smooth = _smooth(self.loss_name, smooth)
        if not isinstance(squared, bool):
            raise ValueError(f"squared of {self.loss_name} must be true or false, got {squared!r}")
        self.squared = squared

    def score(self, x: MaskInputs) -> Tensor:
        if self.squared:
            return dice_score(x.tp, x.sum(x.p_valid**2), x.sum(x.g_valid**2), self.smooth)
        return dice_score(x.tp, x.sum_p, x.sum_g, self.smooth)

    def per_instance(self, x: MaskInputs) -> Tensor:
        return 1.0 - self.score(x)


@register_loss(
    "log_cosh_dice",
    kind="region",
    acts_on="probabilities",
    description="log(cosh(dice loss)) per instance (Jadon 2020)",
    source="Jadon 2020, A survey of loss functions for semantic segmentation",
)
class LogCoshDiceLoss(DiceLoss):
    """``log(cosh(1 - dice))`` of the region Dice.

    The YOLACT++ loss survey's code applied log-cosh to its per-pixel ratio (``pixel_dice``)
    instead; this is the definition of the paper it cites.

    Args:
        smooth: as ``dice``.
        squared: as ``dice``.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; sums over each instance's valid pixels.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def per_instance(self, x: MaskInputs) -> Tensor:
        return log_cosh(1.0 - self.score(x))


@register_loss(
    "pixel_dice",
    kind="pixel",
    acts_on="probabilities",
    description="per-pixel ratio 1 − (2pg + s)/(p + g + s), averaged: what the YOLACT++ survey's code computed",
    source="YolactLossSurvey layers/modules/multibox_loss.py (dice_loss, smooth 0.1)",
)
class PixelDiceLoss(PixelLoss):
    """``1 - (2·p·g + s) / (p + g + s)`` for each pixel, averaged over valid pixels.

    Not a region Dice: the YOLACT++ loss survey's code (``MultiBoxLoss.dice_loss`` in
    YolactLossSurvey's ``multibox_loss.py``, ``smooth = 0.1``) computes this ratio pixel by pixel and
    never sums over the mask. Kept to reproduce the survey's Dice results; use ``dice`` for the loss
    the paper describes.

    Args:
        smooth: ``s`` > 0 (at 0 a pixel with ``p = g = 0`` is 0/0).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, smooth: float = 0.1, **base: Any):
        super().__init__(**base)
        self.smooth = check_number("pixel_dice", "smooth", smooth, low=0.0, low_open=True)

    def per_pixel(self, x: MaskInputs) -> Tensor:
        p, g, s = x.p, x.target, self.smooth
        return 1.0 - (2.0 * p * g + s) / (p + g + s)


@register_loss(
    "jaccard",
    kind="region",
    acts_on="probabilities",
    description="soft Jaccard (IoU) loss 1 − (Σpg + s)/(Σp + Σg − Σpg + s) per instance",
    source="Rahman & Wang 2016, Optimizing intersection-over-union in deep neural networks",
)
class JaccardLoss(DiceLoss):
    """``1 - (TP + s) / (Σp + Σg - TP + s)``.

    Args:
        smooth: ``s`` >= 0.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; sums over each instance's valid pixels.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, smooth: float = 1.0, **base: Any):
        super().__init__(smooth=smooth, **base)

    def score(self, x: MaskInputs) -> Tensor:
        return jaccard_score(x.tp, x.sum_p, x.sum_g, self.smooth)


def _tversky_simplify(params: dict[str, Any]) -> tuple[str, str] | None:
    if params["alpha"] == 0.5 and params["beta"] == 0.5:
        s = 2 * float(params["smooth"])
        return f"dice(smooth={s:g})", "alpha = beta = 0.5 makes the Tversky index the Dice score with smooth 2s"
    return None


@register_loss(
    "tversky",
    kind="region",
    acts_on="probabilities",
    description="Tversky loss 1 − (TP + s)/(TP + α·FP + β·FN + s): Dice with separate FP and FN weights",
    source="Salehi et al. 2017, Tversky loss function for image segmentation",
    simplify=_tversky_simplify,
)
class TverskyLoss(DiceLoss):
    """A Dice with two weights: ``1 - (TP + s) / (TP + α·FP + β·FN + s)``.

    Args:
        alpha: weight of false positives ``Σp·(1 - g)``, >= 0.
        beta: weight of false negatives ``Σ(1 - p)·g``, >= 0 (``beta > alpha`` favours recall).
        smooth: ``s`` >= 0.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; sums over each instance's valid pixels.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0, **base: Any):
        super().__init__(smooth=smooth, **base)
        self.alpha = check_number(self.loss_name, "alpha", alpha, low=0.0)
        self.beta = check_number(self.loss_name, "beta", beta, low=0.0)

    def score(self, x: MaskInputs) -> Tensor:
        return tversky_score(x.tp, x.sum_p - x.tp, x.sum_g - x.tp, self.alpha, self.beta, self.smooth)


def _focal_tversky_simplify(params: dict[str, Any]) -> tuple[str, str] | None:
    if params["gamma"] == 1:
        a, b, s = (float(params[k]) for k in ("alpha", "beta", "smooth"))
        return f"tversky(alpha={a:g}, beta={b:g}, smooth={s:g})", "gamma=1 leaves the Tversky loss unchanged"
    return None


@register_loss(
    "focal_tversky",
    kind="region",
    acts_on="probabilities",
    description="focal Tversky loss (tversky loss)^gamma",
    source="Abraham & Khan 2019, A novel focal Tversky loss function",
    simplify=_focal_tversky_simplify,
)
class FocalTverskyLoss(TverskyLoss):
    """``tversky^gamma``; ``gamma < 1`` raises the loss of nearly right instances.

    The gradient at a perfect instance (loss exactly 0) is taken as 0: ``t^gamma`` has an infinite
    slope there for ``gamma < 1``.

    Args:
        alpha, beta, smooth: as ``tversky``.
        gamma: exponent > 0.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; sums over each instance's valid pixels.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, gamma: float = 0.75, smooth: float = 1.0, **base: Any):
        super().__init__(alpha=alpha, beta=beta, smooth=smooth, **base)
        self.gamma = check_number("focal_tversky", "gamma", gamma, low=0.0, low_open=True)

    def per_instance(self, x: MaskInputs) -> Tensor:
        return safe_pow(super().per_instance(x), self.gamma)
