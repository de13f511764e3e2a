"""Pure tensor helpers shared by the loss modules (smp's ``losses/_functional.py``): a checked
number for a loss parameter, and numerically safe ``log(cosh(x))``, ``sqrt`` and ``pow``.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["check_number", "distance_to_zero", "log_cosh", "safe_pow", "safe_sqrt"]

_LOG2 = math.log(2.0)


def check_number(
    loss: str, name: str, value: Any, low: float | None = None, high: float | None = None, low_open: bool = False
) -> float:
    """``value`` as a float, checked against ``[low, high]`` (``(low, high]`` if ``low_open``).

    Raises:
        ValueError: naming the loss, the parameter and the allowed range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} of {loss} must be a number, got {value!r}")
    v = float(value)
    too_low = low is not None and (v <= low if low_open else v < low)
    too_high = high is not None and v > high
    if too_low or too_high or math.isnan(v):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} of {loss} must lie in {'(' if low_open else '['}{lo}, {hi}], got {value!r}")
    return v


def log_cosh(x: Tensor) -> Tensor:
    """``log(cosh(x))`` without overflow: ``|x| + softplus(-2|x|) - log 2`` (cosh overflows past ~710)."""
    a = x.abs()
    return a + F.softplus(-2.0 * a) - _LOG2


def safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x >= 0`` whose gradient at ``x == 0`` is 0 instead of inf (0·inf = NaN upstream)."""
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def safe_pow(x: Tensor, gamma: float) -> Tensor:
    """``x ** gamma`` for ``x >= 0`` with a finite gradient at ``x == 0`` even when ``gamma < 1``."""
    if gamma >= 1.0:
        return x.clamp_min(0.0) ** gamma
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)) ** gamma, torch.zeros_like(x))


def distance_to_zero(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every non-zero pixel of a ``uint8`` mask to the nearest zero pixel
    (scipy's ``distance_transform_edt``), float64. OpenCV's exact EDT returns float32 with run-to-run
    differences in the last bit; squared distances are integers, so rounding them makes the map exact
    and deterministic."""
    d = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.sqrt(np.rint(d.astype(np.float64) ** 2))
