"""Operators of the spec grammar: a name that wraps another term, ``log_cosh(TERM)`` and
``uncropped(TERM)``.

- ``log_cosh(TERM)``: ``log(cosh(v))`` of the term's per-pixel values ``v``, then the term's own
  per-instance reduction (sum over the valid pixels ÷ the divisor). ``log_cosh(pixel_dice(smooth=0.1))``
  is the Log-Cosh-Dice the YOLACT++ loss survey's code trained (its ``log_cosh_dice_loss``: log-cosh of
  the per-pixel ratio, summed over the crop ÷ the box area), not ``log_cosh_dice`` (log-cosh of the
  region Dice, Jadon 2020). Only a term with per-pixel values (a ``PixelLoss``) can be wrapped.
- ``uncropped(TERM)``: the term over every pixel of the mask, ignoring ``valid`` and ``area``: a pixel
  term sums over all ``H·W`` pixels and divides by ``H·W``; a region term's region is the whole mask.
  In YOLACT, whose ``valid`` is the box crop at prototype resolution, ``bce + 0.5*uncropped(mse)`` is
  the survey's "0.5·MSE + BCE" as its code ran (dbolya's ``mask_proto_double_loss``: the second loss
  on the uncropped mask, ``reduction='sum'``, divided by the map's h·w, weighted by α), and
  ``uncropped(dice)`` is Dice as SOLO and CondInst apply it (whole mask, no box). A model without a
  crop builds it with ``crop=False``: then it is the term itself (``create_loss`` says so).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from losslab.losses._base import MaskInputs, MaskLoss, PixelLoss
from losslab.losses._functional import log_cosh
from losslab.losses.check import OPERATORS as _LINES

__all__ = ["OPERATORS", "LogCosh", "Uncropped"]


class LogCosh(PixelLoss):
    """``log(cosh(v))`` of a pixel loss's per-pixel values ``v``, reduced as the wrapped loss.

    Args:
        inner: the wrapped ``PixelLoss``; the rest as ``MaskLoss``.

    Shape:
        as ``MaskLoss``: ``(N, H, W)`` or ``(N, 1, H, W)`` in, scalar or ``(N,)`` out.
    """

    loss_name = "log_cosh"

    def __init__(self, inner: PixelLoss, **base: Any):
        super().__init__(**base)
        self.inner = inner

    def per_pixel(self, x: MaskInputs) -> Tensor:
        return log_cosh(self.inner.per_pixel(x))


class Uncropped(MaskLoss):
    """A mask loss over every pixel of each mask: ``valid`` and ``area`` are not passed on.

    Args:
        inner: the wrapped ``MaskLoss``.
        crop: whether the model's ``valid`` is a crop to undo; ``False`` (a model without a crop,
            where ``valid`` marks ignored pixels) makes this the wrapped loss unchanged; the rest as
            ``MaskLoss``.

    Shape:
        as ``MaskLoss``: ``(N, H, W)`` or ``(N, 1, H, W)`` in, scalar or ``(N,)`` out.
    """

    loss_name = "uncropped"

    def __init__(self, inner: MaskLoss, crop: bool = True, **base: Any):
        super().__init__(**base)
        self.inner = inner
        self.crop = crop

    def per_instance(self, x: MaskInputs) -> Tensor:
        return self.inner.per_instance(x.uncropped if self.crop else x)

    def extra_repr(self) -> str:
        return f"crop={self.crop}, " + super().extra_repr()


#: Operator name -> (module class, one line for ``losslab losses list``); the names and lines are
#: ``losses.check.OPERATORS``, which the spec check reads without torch.
OPERATORS: dict[str, tuple[type[MaskLoss], str]] = {
    "log_cosh": (LogCosh, _LINES["log_cosh"]),
    "uncropped": (Uncropped, _LINES["uncropped"]),
}
