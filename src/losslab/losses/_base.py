"""The mask-loss contract: input checks, per-instance reduction over valid pixels, and the
lazily shared quantities (sigmoid, log-sigmoid, valid counts) that a hybrid computes once.

A mask loss subclasses ``MaskLoss`` and implements ``per_instance(x: MaskInputs) -> (N,)``; a loss
with a value per pixel subclasses ``PixelLoss`` and implements ``per_pixel(x) -> (N, H, W)`` instead
(operators such as ``log_cosh(...)`` need those values).

Pixel losses are a sum over each instance's valid pixels divided by a per-instance ``area``: by
default the number of valid pixels (a mean), or a divisor the caller passes (YOLACT divides the
sum in the crop by the ground-truth box area, ``mask_proto_normalize_emulate_roi_pooling``).
Region losses (Dice, Jaccard, Tversky, ...) are ratios of sums over the valid pixels and never
see ``area``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "REDUCTIONS",
    "MaskInputs",
    "MaskLoss",
    "PixelLoss",
    "ReducedLoss",
    "check_mask_inputs",
    "hook",
    "missing_hooks",
    "reduce",
]

REDUCTIONS = ("mean", "sum", "none")

_HOOK = "__losslab_hook__"
_Method = TypeVar("_Method", bound=Callable[..., Any])


def hook(method: _Method) -> _Method:
    """Mark a base-class method that each loss must define (``per_instance``, ``per_pixel``, ...):
    ``register_loss`` refuses a class that leaves one undefined, when its plugin is imported rather
    than at its first training step."""
    setattr(method, _HOOK, True)
    return method


def missing_hooks(cls: type) -> list[str]:
    """The names of ``cls``'s methods still marked ``@hook`` (defined by no subclass), sorted."""
    return sorted(name for name in dir(cls) if getattr(getattr(cls, name, None), _HOOK, False))


def reduce(values: Tensor, reduction: str) -> Tensor:
    """Reduce per-instance values ``(N,)``. An empty ``(0,)`` tensor reduces to a zero that keeps
    the graph (``values.sum()``), so detection training on an image without instances works."""
    if reduction == "none":
        return values
    if reduction == "sum" or values.numel() == 0:
        return values.sum()
    return values.mean()


def _squeeze_channel(t: Tensor, name: str) -> Tensor:
    if t.dim() == 4:
        if t.shape[1] != 1:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}: a 4-D mask must be (N, 1, H, W); pass one channel per instance"
            )
        return t[:, 0]
    if t.dim() != 3:
        raise ValueError(f"{name} has shape {tuple(t.shape)}: expected (N, H, W) or (N, 1, H, W)")
    return t


def _check_area(area: Tensor | None, n: int, like: Tensor) -> Tensor | None:
    if area is None:
        return None
    if not isinstance(area, Tensor) or area.shape != (n,):
        shape = tuple(area.shape) if isinstance(area, Tensor) else type(area).__name__
        raise ValueError(f"area must be a tensor of shape ({n},), one divisor per instance, got {shape}")
    return area.to(like.dtype)


def check_mask_inputs(
    logits: Tensor, target: Tensor, valid: Tensor | None, contract: str = "mask", check_values: bool = True
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate and normalise inputs to ``(N, H, W)``.

    Raises:
        ValueError: a shape mismatch, a non-float dtype, NaN/inf in ``logits`` or ``target``, or
            (mask contract) a target outside [0, 1].
    """
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise ValueError("logits and target must be torch tensors")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor, got dtype {logits.dtype}; call .float() first")
    if not target.is_floating_point():
        raise ValueError(f"target must be a float tensor in [0, 1], got dtype {target.dtype}; call .float() first")
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    if logits.dtype in (torch.float16, torch.bfloat16):  # from an autocast region: losses run in float32
        logits = logits.float()
    logits = _squeeze_channel(logits, "logits")
    target = _squeeze_channel(target, "target")
    if valid is not None:
        if not isinstance(valid, Tensor):
            raise ValueError("valid must be a torch tensor or None")
        valid = _squeeze_channel(valid, "valid") if valid.dim() == 4 else valid
        if valid.shape != logits.shape:
            raise ValueError(f"valid {tuple(valid.shape)} must have the shape of logits {tuple(logits.shape)}")
        # The contract: a pixel counts where valid is non-zero (a 0.5 does not count half).
        valid = (valid != 0).to(dtype=logits.dtype)
    if target.dtype != logits.dtype:
        target = target.to(logits.dtype)
    if check_values and logits.numel():
        # One min/max pass per tensor (aminmax propagates NaN; inf shows at an end) instead of
        # isfinite(), which allocates a full boolean copy: about 20x cheaper on CPU. One sync.
        z_lo, z_hi = torch.aminmax(logits.detach())
        g_lo, g_hi = torch.aminmax(target.detach())
        lo_hi = torch.stack([z_lo, z_hi, g_lo, g_hi]).tolist()
        if not all(math.isfinite(v) for v in lo_hi):
            what = "logits" if not all(math.isfinite(v) for v in lo_hi[:2]) else "target"
            raise ValueError(f"{what} contain NaN or inf values")
        if contract == "mask" and (lo_hi[2] < 0 or lo_hi[3] > 1):
            raise ValueError(
                f"target must lie in [0, 1], found values in [{lo_hi[2]:.4g}, {lo_hi[3]:.4g}]; "
                "scale masks to 0/1 (e.g. mask / 255)"
            )
    return logits, target, valid


class MaskInputs:
    """Checked inputs ``(N, H, W)`` and the quantities several losses share, each computed once.

    Attributes:
        logits: raw scores ``(N, H, W)`` (the prediction itself under the regression contract).
        target: ``(N, H, W)`` in [0, 1] (any real values under the regression contract).
        valid: ``(N, H, W)`` float 0/1 or ``None`` (every pixel counts).
        regression: True when ``p`` is the raw prediction rather than its sigmoid.
        area: ``(N,)`` divisor of the pixel sums, or ``None`` for the number of valid pixels.
    """

    def __init__(
        self,
        logits: Tensor,
        target: Tensor,
        valid: Tensor | None,
        regression: bool = False,
        area: Tensor | None = None,
    ):
        self.logits = logits
        self.target = target
        self.valid = valid
        self.regression = regression
        self.area = area

    @property
    def n(self) -> int:
        return self.logits.shape[0]

    @cached_property
    def p(self) -> Tensor:
        """Probabilities ``sigmoid(logits)`` (the raw prediction under the regression contract)."""
        return self.logits if self.regression else torch.sigmoid(self.logits)

    @cached_property
    def bce(self) -> Tensor:
        """Per-pixel binary cross-entropy with logits, ``(N, H, W)``, numerically stable."""
        return F.binary_cross_entropy_with_logits(self.logits, self.target, reduction="none")

    @cached_property
    def count(self) -> Tensor:
        """Valid pixels per instance, ``(N,)``, at least 1 (an instance with none counts zero loss)."""
        if self.valid is None:
            hw = self.logits.shape[-1] * self.logits.shape[-2]
            return self.logits.new_full((self.n,), float(max(hw, 1)))
        return self.valid.sum(dim=(1, 2)).clamp_min(1.0)

    def masked(self, values: Tensor) -> Tensor:
        """``values`` with invalid pixels set to zero."""
        return values if self.valid is None else values * self.valid

    def sum(self, values: Tensor) -> Tensor:
        """Sum of per-pixel ``values`` over each instance's valid pixels, ``(N,)``."""
        return self.masked(values).sum(dim=(1, 2))

    @cached_property
    def divisor(self) -> Tensor:
        """What a pixel loss divides its sum by, ``(N,)``: ``area`` when given, else ``count``."""
        return self.count if self.area is None else self.area.clamp_min(1e-12)

    def mean(self, values: Tensor) -> Tensor:
        """Per-pixel ``values`` summed over each instance's valid pixels and divided by ``divisor``
        (the mean over the valid pixels unless an ``area`` was given), ``(N,)``."""
        return self.sum(values) / self.divisor

    @cached_property
    def p_valid(self) -> Tensor:
        """``p`` with invalid pixels zeroed (the region losses' prediction)."""
        return self.masked(self.p)

    @cached_property
    def g_valid(self) -> Tensor:
        """``target`` with invalid pixels zeroed."""
        return self.masked(self.target)

    @cached_property
    def tp(self) -> Tensor:
        """Soft true positives ``Σ p·g`` over valid pixels, ``(N,)``."""
        return (self.p_valid * self.target).sum(dim=(1, 2))

    @cached_property
    def sum_p(self) -> Tensor:
        """``Σ p`` over valid pixels, ``(N,)``."""
        return self.p_valid.sum(dim=(1, 2))

    @cached_property
    def sum_g(self) -> Tensor:
        """``Σ g`` over valid pixels, ``(N,)``."""
        return self.g_valid.sum(dim=(1, 2))

    @cached_property
    def uncropped(self) -> MaskInputs:
        """The same masks with every pixel valid and no ``area`` (``uncropped(...)`` reads these): a
        pixel loss averages over all ``H·W`` pixels, a region loss sums over the whole mask. The
        sigmoid and the per-pixel BCE, when already computed, are shared."""
        if self.valid is None and self.area is None:
            return self
        out = MaskInputs(self.logits, self.target, None, regression=self.regression)
        for key in ("p", "bce"):  # cached_property values: the same tensors, not recomputed
            if key in self.__dict__:
                out.__dict__[key] = self.__dict__[key]
        return out


class ReducedLoss(nn.Module):
    """Base of every catalogue loss.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        check_inputs: check the inputs' values (finite, in range); a caller on a hot path that
            validates elsewhere passes ``False`` (each check costs a device sync).
        spec: the canonical spec this module computes (``create_loss`` gives it); the loss's name
            by default.

    A subclass takes its own parameters and passes the rest on (``**base``), so the factory gives
    every loss its reduction, contract and checks through the constructor.
    """

    loss_name = "?"

    def __init__(self, reduction: str = "mean", check_inputs: bool = True, spec: str | None = None):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.check_inputs = bool(check_inputs)
        self.spec = self.loss_name if spec is None else spec


class MaskLoss(ReducedLoss):
    """Base of every mask loss: ``loss(logits, target, valid=None)``.

    Shape:
        - logits: ``(N, H, W)`` or ``(N, 1, H, W)``, raw scores; one instance per mask.
        - target: same shape, float in [0, 1].
        - valid: optional, same shape; only pixels where it is non-zero count.
        - area: optional ``(N,)``: pixel losses divide their sum over the valid pixels by it instead
          of by the number of valid pixels; region and structural losses ignore it.
        - output: scalar for ``reduction="mean"``/``"sum"``; ``(N,)`` for ``"none"``.

    Args:
        contract: ``"mask"`` (targets in [0, 1], the sigmoid of the logits is the prediction) or
            ``"regression"`` (raw values against raw values); the rest as ``ReducedLoss``.

    Subclasses implement ``per_instance(x)`` returning ``(N,)``.
    """

    loss_name = "?"

    def __init__(
        self, reduction: str = "mean", contract: str = "mask", check_inputs: bool = True, spec: str | None = None
    ):
        super().__init__(reduction, check_inputs, spec)
        if contract not in ("mask", "regression"):
            raise ValueError(f"contract must be 'mask' or 'regression', got {contract!r}")
        self.contract = contract

    @hook
    def per_instance(self, x: MaskInputs) -> Tensor:
        raise NotImplementedError

    def prepare(
        self, logits: Tensor, target: Tensor, valid: Tensor | None = None, area: Tensor | None = None
    ) -> MaskInputs:
        """Check the inputs and wrap them in a ``MaskInputs``."""
        logits, target, valid = check_mask_inputs(
            logits, target, valid, contract=self.contract, check_values=self.check_inputs
        )
        area = _check_area(area, logits.shape[0], logits)
        return MaskInputs(logits, target, valid, regression=self.contract == "regression", area=area)

    def forward(
        self, logits: Tensor, target: Tensor, valid: Tensor | None = None, area: Tensor | None = None
    ) -> Tensor:
        x = self.prepare(logits, target, valid, area)
        if x.n == 0:
            return reduce(x.logits.sum(dim=(1, 2)) * 0.0, self.reduction)
        return reduce(self.per_instance(x), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" + (", contract='regression'" if self.contract != "mask" else "")


class PixelLoss(MaskLoss):
    """A mask loss with a value per pixel: ``per_instance`` is that value summed over each
    instance's valid pixels and divided by ``MaskInputs.divisor`` (the valid-pixel count, or the
    caller's ``area``). Subclasses implement ``per_pixel(x) -> (N, H, W)``.
    """

    @hook
    def per_pixel(self, x: MaskInputs) -> Tensor:
        raise NotImplementedError

    def per_instance(self, x: MaskInputs) -> Tensor:
        return x.mean(self.per_pixel(x))
