"""Structural losses: SSIM over local windows and the Lovász hinge (a surrogate of the Jaccard index
built from the sorted per-pixel errors). Both look at how pixels relate to each other, not at each
pixel on its own.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss
from losslab.losses.registry import register_loss

__all__ = ["LovaszHingeLoss", "SSIMLoss", "gaussian_filter", "gaussian_window", "lovasz_hinge_per_instance", "ssim_map"]

_K1, _K2 = 0.01, 0.03


def gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The normalised 1-D Gaussian ``exp(-x²/2σ²)`` on ``size`` taps centred on ``size // 2``.

    Shape:
        output: ``(size,)``.
    """
    coords = torch.arange(size, dtype=torch.float64, device=device) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


# Up to this image side the Gaussian filter runs as two banded matrix products, which on CPU are
# 3-4x faster than PyTorch's depthwise conv2d (forward + backward, 100 x 138 x 138); beyond it the
# band's wasted multiplications (side / window times the needed ones) make the conv faster.
_MATMUL_MAX_SIDE = 600


def _band(n: int, win: Tensor) -> Tensor:
    # (n - k + 1, n) matrix whose row i holds the window at columns i..i+k-1: valid convolution.
    k = win.numel()
    rows = torch.arange(n - k + 1, device=win.device)
    band = torch.zeros(n - k + 1, n, dtype=win.dtype, device=win.device)
    for j in range(k):
        band[rows, rows + j] = win[j]
    return band


def gaussian_filter(stack: Tensor, win: Tensor) -> Tensor:
    """Separable valid filtering of every channel of ``stack`` with the 1-D window ``win``.

    Shape:
        - stack: ``(N, C, H, W)``; win: ``(k,)``.
        - output: ``(N, C, H - k + 1, W - k + 1)``.
    """
    _, c, h, w = stack.shape
    k = win.numel()
    if max(h, w) <= _MATMUL_MAX_SIDE:
        return _band(h, win) @ (stack @ _band(w, win).T)
    stack = F.conv2d(stack, win.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(stack, win.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim_map(p: Tensor, g: Tensor, window: int, sigma: float, data_range: Tensor | float = 1.0) -> Tensor:
    """The SSIM map of Wang et al. (2004) with a Gaussian window and valid convolution (no padding).

    The five local statistics (μp, μg, E[p²], E[g²], E[pg]) are filtered together as one 5-channel
    stack by ``gaussian_filter`` (two banded matrix products, or two depthwise convolutions for
    large images).

    Args:
        p: predictions.
        g: targets.
        window: odd window size in pixels.
        sigma: standard deviation of the Gaussian window in pixels.
        data_range: the dynamic range L in ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``; a float or an
            ``(N,)`` tensor (one range per image).

    Shape:
        - p, g: ``(N, H, W)`` with ``H, W >= window``.
        - output: ``(N, H - window + 1, W - window + 1)``.
    """
    n = p.shape[0]
    win = gaussian_window(window, sigma, p.dtype, p.device)
    stack = torch.stack([p, g, p * p, g * g, p * g], dim=1)  # (N, 5, H, W)
    mu_p, mu_g, e_pp, e_gg, e_pg = gaussian_filter(stack, win).unbind(dim=1)
    if isinstance(data_range, Tensor):
        data_range = data_range.view(n, 1, 1)
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    mu_pp, mu_gg, mu_pg = mu_p * mu_p, mu_g * mu_g, mu_p * mu_g
    var_p, var_g, cov = e_pp - mu_pp, e_gg - mu_gg, e_pg - mu_pg
    luminance = (2 * mu_pg + c1) / (mu_pp + mu_gg + c1)
    contrast_structure = (2 * cov + c2) / (var_p + var_g + c2)
    return luminance * contrast_structure


@register_loss(
    "ssim",
    kind="structural",
    acts_on="probabilities",
    description="1 - SSIM(sigmoid(logits), target), Gaussian window, valid convolution",
    source="Wang et al. 2004, 'Image quality assessment: from error visibility to structural similarity'",
    contracts=("mask", "regression"),
)
class SSIMLoss(MaskLoss):
    """``1 − SSIM(p, g)`` per instance: the mean of the SSIM map, K = (0.01, 0.03).

    With ``valid``, the SSIM map is averaged over the positions whose window centre is a valid
    pixel (the window itself may reach into invalid pixels: their values are the prediction and the
    target as given). An instance without a valid centre contributes zero.

    Under the mask contract ``p = sigmoid(logits)`` and the data range is 1. Under the regression
    contract (depth) ``p`` is the raw prediction; ``data_range`` sets L, and ``data_range=None``
    takes each instance's target range ``max(g) − min(g)`` over its valid pixels (detached, at
    least 1e-6), as ``skimage.metrics.structural_similarity`` does for float images.

    Args:
        window: odd Gaussian window size in pixels (11 in Wang et al.).
        sigma: standard deviation of the window (1.5).
        data_range: the dynamic range L, or ``None`` for the per-instance target range.

    Shape:
        logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)`` with ``H, W >= window``; output
        scalar or ``(N,)``.

    Raises:
        ValueError: an even or non-positive window, a non-positive sigma, or an image smaller than
            the window.
    """

    def __init__(self, window: int = 11, sigma: float = 1.5, data_range: float | None = 1.0, **base: Any):
        super().__init__(**base)
        if int(window) != window or window < 1 or window % 2 == 0:
            raise ValueError(f"ssim window must be an odd positive integer, got {window}")
        if sigma <= 0:
            raise ValueError(f"ssim sigma must be positive, got {sigma}")
        if data_range is not None and data_range <= 0:
            raise ValueError(f"ssim data_range must be positive or None, got {data_range}")
        self.window = int(window)
        self.sigma = float(sigma)
        self.data_range = data_range

    def _range(self, x: MaskInputs) -> Tensor | float:
        if self.data_range is not None:
            return float(self.data_range)
        with torch.no_grad():
            g = x.target
            if x.valid is None:
                hi, lo = g.amax(dim=(1, 2)), g.amin(dim=(1, 2))
            else:
                keep = x.valid > 0
                hi = g.masked_fill(~keep, float("-inf")).amax(dim=(1, 2))
                lo = g.masked_fill(~keep, float("inf")).amin(dim=(1, 2))
            return (hi - lo).nan_to_num(0.0, 0.0, 0.0).clamp_min(1e-6)

    def per_instance(self, x: MaskInputs) -> Tensor:
        h, w = x.logits.shape[-2:]
        if h < self.window or w < self.window:
            raise ValueError(
                f"ssim needs masks at least as large as its window: got {h}x{w} pixels for window "
                f"{self.window}; use a smaller window, e.g. 'ssim(window={max(1, min(h, w) // 2 * 2 - 1)})'"
            )
        smap = ssim_map(x.p, x.target, self.window, self.sigma, self._range(x))
        if x.valid is None:
            return 1.0 - smap.mean(dim=(1, 2))
        r = self.window // 2
        centre = (x.valid[:, r : h - r, r : w - r] > 0).to(smap.dtype)
        count = centre.sum(dim=(1, 2))
        score = (smap * centre).sum(dim=(1, 2)) / count.clamp_min(1.0)
        return torch.where(count > 0, 1.0 - score, score * 0.0)

    def extra_repr(self) -> str:
        return f"window={self.window}, sigma={self.sigma}, data_range={self.data_range}, " + super().extra_repr()


def lovasz_hinge_per_instance(logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """The binary Lovász hinge of Berman et al. (2018), one value per instance, batched.

    Errors ``1 − logit·(2g − 1)`` are sorted per instance and the hinge ``relu(error)`` is weighted by
    the discrete gradient of the Lovász extension of the Jaccard loss. Soft targets enter the
    cumulative sums as they are, as in smp. With ``valid``, only valid pixels exist.

    Only pixels with a positive error contribute, and they come first in the descending order, so
    only they are sorted (gathered into a padded ``(N, K)`` block); the rest enters through the
    total ``Σg``. This is exact and cuts the sort, the dominant cost, to the active pixels.

    Shape:
        - logits, target, valid: ``(N, H, W)``.
        - output: ``(N,)``.
    """
    n = logits.shape[0]
    labels = target.reshape(n, -1)
    errors = 1.0 - logits.reshape(n, -1) * (2.0 * labels - 1.0)
    with torch.no_grad():
        keep = None if valid is None else valid.reshape(n, -1) > 0
        total = (labels if keep is None else labels * keep).sum(dim=1, keepdim=True)
        active = errors.detach() > 0
        if keep is not None:
            active &= keep
        counts = active.sum(dim=1)
    k = int(counts.max()) if n else 0
    if k == 0:
        return (errors * 0.0).sum(dim=1)  # every hinge is zero; keep the graph
    with torch.no_grad():
        # Compact the active pixels of each row into slots 0..count-1 (padding goes to slot k).
        slot = torch.where(active, active.cumsum(dim=1) - 1, k)
        index = torch.zeros(n, k + 1, dtype=torch.long, device=errors.device)
        index.scatter_(1, slot, torch.arange(errors.shape[1], device=errors.device).expand(n, -1))
        index = index[:, :k]
        filled = torch.arange(k, device=errors.device) < counts.unsqueeze(1)
        key = errors.detach().gather(1, index).masked_fill(~filled, float("-inf"))
        order = key.argsort(dim=1, descending=True)
        index = index.gather(1, order)
        filled = filled.gather(1, order).to(labels.dtype)
        gt = labels.gather(1, index) * filled
        intersection = total - gt.cumsum(dim=1)
        union = total + (filled - gt).cumsum(dim=1)
        jaccard = 1.0 - intersection / union.clamp_min(1e-12)
        weight = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1) * filled
    return (errors.gather(1, index).clamp_min(0.0) * weight).sum(dim=1)


@register_loss(
    "lovasz_hinge",
    kind="structural",
    acts_on="logits",
    description="Lovász hinge: a convex surrogate of 1 - IoU on the sorted logit margins",
    source="Berman et al. 2018, 'The Lovász-Softmax loss' (as smp LovaszLoss binary, per_image)",
)
class LovaszHingeLoss(MaskLoss):
    """The binary Lovász hinge on logits, one value per instance (smp's ``per_image=True``).

    With ``valid``, only valid pixels count, as smp's ``ignore_index`` path. An instance without a
    valid pixel contributes zero.

    Growing a mask's logits lowers the hinge only when nearly all its pixels have the right sign, so
    alone from a random start it can shrink every mask logit to 0 (YOLACT's masks come out empty);
    beside BCE (``bce + lovasz_hinge``) it trains. See docs/results.md, "Why the Lovász hinge alone
    empties YOLACT's masks".

    Shape:
        logits, target, valid: ``(N, H, W)`` or ``(N, 1, H, W)``; output scalar or ``(N,)``.
    """

    def per_instance(self, x: MaskInputs) -> Tensor:
        return lovasz_hinge_per_instance(x.logits, x.target, x.valid)
