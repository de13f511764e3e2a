"""Pixel losses: each pixel's error on its own, averaged over an instance's valid pixels.

Notation: ``z`` the logits, ``p = sigmoid(z)``, ``g`` the target. Every loss here returns, per
instance, the mean of a per-pixel value over that instance's valid pixels (``MaskInputs.mean``),
except ``rmse``, the square root of that mean.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss, PixelLoss
from losslab.losses._functional import check_number, log_cosh, safe_sqrt
from losslab.losses.registry import register_loss

__all__ = [
    "BCELoss",
    "BorderBCELoss",
    "FocalLoss",
    "HuberLoss",
    "L1Loss",
    "LabelSmoothingBCELoss",
    "LogCoshBCELoss",
    "MSELoss",
    "RMSELoss",
    "WeightedBCELoss",
    "unet_border_weights",
]

# --- pure functions ------------------------------------------------------------------------------


@torch.no_grad()
def unet_border_weights(target: Tensor, w0: float = 10.0, sigma: float = 5.0) -> Tensor:
    """The U-Net weight map (Ronneberger et al. 2015, eq. 2) of each mask, without class balancing.

    ``w = 1 + w0 · exp(-(d1 + d2)² / (2σ²))`` on background pixels and ``w = 1`` on the object.
    U-Net's ``d1`` and ``d2`` are the distances to the nearest and second-nearest cell; here each
    mask holds one object, so ``d1`` is the Euclidean distance (in pixels, to the nearest object
    pixel) from a background pixel to the object and ``d2 = d1``. A mask without object has
    ``w = 1`` everywhere. The target is binarised at 0.5; distances are computed on the CPU with
    OpenCV's exact transform (about twice as fast as scipy's), one call per instance.

    Shape:
        - target: ``(N, H, W)`` in [0, 1].
        - output: ``(N, H, W)``, same dtype and device, no gradient.
    """
    obj = (target.detach() > 0.5).cpu().numpy()
    dist = np.full(obj.shape, np.inf, dtype=np.float32)  # inf: exp(-inf) = 0, no border term
    for i, mask in enumerate(obj):
        if mask.any() and not mask.all():
            # distanceTransform measures, for each non-zero pixel, the distance to the nearest zero one.
            dist[i] = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d = torch.from_numpy(dist).to(device=target.device, dtype=target.dtype)
    border = torch.exp(-((2.0 * d) ** 2) / (2.0 * sigma**2)) * w0
    border = border.masked_fill(torch.from_numpy(obj).to(target.device), 0.0)  # object pixels: w = 1
    return 1.0 + border


# --- losses --------------------------------------------------------------------------------------


@register_loss(
    "bce",
    kind="pixel",
    acts_on="logits",
    description="binary cross-entropy with logits (YOLACT's and Mask R-CNN's mask loss)",
    source="torch.nn.functional.binary_cross_entropy_with_logits",
)
class BCELoss(PixelLoss):
    """Binary cross-entropy with logits, averaged over each instance's valid pixels.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def per_pixel(self, x: MaskInputs) -> Tensor:
        return x.bce


@register_loss(
    "mse",
    kind="pixel",
    acts_on="probabilities",
    description="mean squared error between sigmoid(logits) and the target",
    source="torch.nn.functional.mse_loss",
    contracts=("mask", "regression"),
)
class MSELoss(PixelLoss):
    """Mean squared error ``(p - g)²`` on probabilities (on values under the regression contract).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def per_pixel(self, x: MaskInputs) -> Tensor:
        # F.mse_loss's fused element kernel (and its backward) beat (p - g) ** 2 by ~1.8x on CPU.
        return F.mse_loss(x.p, x.target, reduction="none")


@register_loss(
    "l1",
    kind="pixel",
    acts_on="probabilities",
    description="mean absolute error between sigmoid(logits) and the target",
    source="torch.nn.functional.l1_loss",
    contracts=("mask", "regression"),
)
class L1Loss(PixelLoss):
    """Mean absolute error ``|p - g|`` on probabilities (on values under the regression contract).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def per_pixel(self, x: MaskInputs) -> Tensor:
        return F.l1_loss(x.p, x.target, reduction="none")


@register_loss(
    "rmse",
    kind="pixel",
    acts_on="probabilities",
    description="square root of each instance's mean squared error",
    source="sqrt of torch.nn.functional.mse_loss",
    contracts=("mask", "regression"),
)
class RMSELoss(MaskLoss):
    """Root mean squared error ``sqrt(mean((p - g)²))`` per instance.

    The gradient at zero error is set to 0 (a subgradient) rather than the 0·inf = NaN that
    ``torch.sqrt`` gives, so a perfect instance in a batch does not poison the step.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def per_instance(self, x: MaskInputs) -> Tensor:
        return safe_sqrt(x.mean(F.mse_loss(x.p, x.target, reduction="none")))


def _huber_simplify(params: dict[str, Any]) -> tuple[str, str] | None:
    if params["delta"] >= 1:
        return "0.5*mse", "on probabilities |p − g| ≤ 1 ≤ delta, so Huber never leaves its quadratic branch"
    return None


@register_loss(
    "huber",
    kind="pixel",
    acts_on="probabilities",
    description="Huber loss on sigmoid(logits) − target (quadratic below delta, linear above)",
    source="torch.nn.functional.huber_loss; Huber 1964",
    contracts=("mask", "regression"),
    simplify=_huber_simplify,
)
class HuberLoss(PixelLoss):
    """Huber loss of ``p - g``: ``0.5·e²`` if ``|e| < delta`` else ``delta·(|e| - 0.5·delta)``.

    On probabilities ``|p - g| ≤ 1``, so any ``delta ≥ 1`` is exactly ``0.5·mse`` (the factory warns);
    under the regression contract ``delta`` matters at every value.

    Args:
        delta: where the quadratic branch turns linear, > 0.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, delta: float = 1.0, **base: Any):
        super().__init__(**base)
        self.delta = check_number("huber", "delta", delta, low=0.0, low_open=True)

    def per_pixel(self, x: MaskInputs) -> Tensor:
        return F.huber_loss(x.p, x.target, reduction="none", delta=self.delta)


@register_loss(
    "log_cosh_bce",
    kind="pixel",
    acts_on="logits",
    description="log(cosh(·)) of each pixel's BCE, averaged (the YOLACT++ loss survey's LCBCE)",
    source="Karakas et al., YOLACT++ loss survey (YolactLossSurvey multibox_loss.py)",
)
class LogCoshBCELoss(PixelLoss):
    """``log(cosh(bce))`` per pixel, averaged over valid pixels.

    Computed as ``b + softplus(-2b) - log 2`` so a large BCE does not overflow ``cosh``; for large
    BCE the loss is ``bce - log 2`` (linear), for small BCE it is ``bce² / 2``.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def per_pixel(self, x: MaskInputs) -> Tensor:
        return log_cosh(x.bce)


def _smoothing_simplify(params: dict[str, Any]) -> tuple[str, str] | None:
    return ("bce", "smoothing=0 leaves the target unchanged") if params["smoothing"] == 0 else None


@register_loss(
    "label_smoothing_bce",
    kind="pixel",
    acts_on="logits",
    description="BCE against the smoothed target g·(1−s) + s/2",
    source="Mask R-CNN custom mask loss page (label_smoothing_bce_loss); Szegedy et al. 2016",
    simplify=_smoothing_simplify,
)
class LabelSmoothingBCELoss(PixelLoss):
    """BCE with logits against ``g·(1 - s) + s/2``, averaged over valid pixels.

    Its minimum is at ``p = g·(1 - s) + s/2``, not at a hard 0/1 prediction.

    Args:
        smoothing: ``s`` in [0, 1].

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, smoothing: float = 0.05, **base: Any):
        super().__init__(**base)
        self.smoothing = check_number("label_smoothing_bce", "smoothing", smoothing, low=0.0, high=1.0)

    def per_pixel(self, x: MaskInputs) -> Tensor:
        s = self.smoothing
        smoothed = x.target * (1.0 - s) + 0.5 * s
        return F.binary_cross_entropy_with_logits(x.logits, smoothed, reduction="none")


@register_loss(
    "focal",
    kind="pixel",
    acts_on="logits",
    description="sigmoid focal loss: BCE down-weighted by (1 − p_t)^gamma, alpha-balanced",
    source="Lin et al. 2017, Focal Loss for Dense Object Detection; torchvision.ops.sigmoid_focal_loss",
)
class FocalLoss(PixelLoss):
    """``alpha_t · (1 - p_t)^gamma · bce`` per pixel, as ``torchvision.ops.sigmoid_focal_loss``,
    averaged over valid pixels. ``p_t = p·g + (1 - p)·(1 - g)``, ``alpha_t = alpha·g + (1 - alpha)·(1 - g)``.

    Args:
        alpha: weight of the positive class in [0, 1]; a negative value turns the weighting off
            (torchvision's ``alpha=-1``).
        gamma: focusing exponent ``>= 0``; ``gamma=0, alpha<0`` is plain BCE. For ``0 < gamma < 1``
            the gradient is unbounded as ``p_t -> 1`` (in the definition, not the code).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, **base: Any):
        super().__init__(**base)
        self.alpha = check_number("focal", "alpha", alpha, high=1.0)
        self.gamma = check_number("focal", "gamma", gamma, low=0.0)

    def per_pixel(self, x: MaskInputs) -> Tensor:
        p, g = x.p, x.target
        one_minus_pt = p * (1.0 - g) + (1.0 - p) * g
        loss = x.bce * one_minus_pt**self.gamma
        if self.alpha >= 0:
            loss = loss * (self.alpha * g + (1.0 - self.alpha) * (1.0 - g))
        return loss


def _pos_weight_simplify(params: dict[str, Any]) -> tuple[str, str] | None:
    return ("bce", "pos_weight=1 weights positives like negatives") if params["pos_weight"] == 1 else None


@register_loss(
    "weighted_bce",
    kind="pixel",
    acts_on="logits",
    description="BCE with the positive term weighted by pos_weight",
    source="torch.nn.functional.binary_cross_entropy_with_logits(pos_weight=...)",
    simplify=_pos_weight_simplify,
)
class WeightedBCELoss(PixelLoss):
    """``-[pos_weight·g·log p + (1 - g)·log(1 - p)]`` per pixel, averaged over valid pixels.

    Written as ``bce + (pos_weight - 1)·g·softplus(-z)`` so a hybrid reuses the shared BCE.

    Args:
        pos_weight: weight of the foreground term, > 0 (> 1 favours recall on small objects).

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, pos_weight: float = 1.0, **base: Any):
        super().__init__(**base)
        self.pos_weight = check_number("weighted_bce", "pos_weight", pos_weight, low=0.0, low_open=True)

    def per_pixel(self, x: MaskInputs) -> Tensor:
        if self.pos_weight == 1.0:
            return x.bce
        extra = (self.pos_weight - 1.0) * x.target * F.softplus(-x.logits)
        return x.bce + extra


def _border_simplify(params: dict[str, Any]) -> tuple[str, str] | None:
    return ("bce", "w0=0 makes every weight 1") if params["w0"] == 0 else None


@register_loss(
    "border_bce",
    kind="pixel",
    acts_on="logits",
    description="BCE weighted by the U-Net border map 1 + w0·exp(−(d1+d2)²/2σ²) of the target",
    source="Ronneberger et al. 2015, U-Net, eq. 2 (without the class-balance term)",
    simplify=_border_simplify,
)
class BorderBCELoss(PixelLoss):
    """BCE times the U-Net border weight map of the target (``unet_border_weights``), averaged
    over valid pixels.

    With one mask per instance there is one object, so ``d1`` is the distance of a background
    pixel to the object and ``d2 = d1``: ``w = 1 + w0·exp(-(2·d1)² / (2σ²))`` on background pixels,
    ``w = 1`` on the object. The weights are not renormalised (as in U-Net), so the loss is larger
    than ``bce`` by the mean weight. The distances come from the full target, not only the valid
    pixels (a crop does not move the object's border); they carry no gradient.

    Args:
        w0: peak extra weight next to the object, >= 0.
        sigma: width in pixels of the border band, > 0.

    Shape:
        - logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.
    """

    def __init__(self, w0: float = 10.0, sigma: float = 5.0, **base: Any):
        super().__init__(**base)
        self.w0 = check_number("border_bce", "w0", w0, low=0.0)
        self.sigma = check_number("border_bce", "sigma", sigma, low=0.0, low_open=True)

    def per_pixel(self, x: MaskInputs) -> Tensor:
        weights = unet_border_weights(x.target, self.w0, self.sigma)
        return weights * x.bce
