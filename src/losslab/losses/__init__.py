"""The loss catalogue: named segmentation, box and class losses that compose into hybrids.

>>> loss = create_loss("0.5*mse + bce")
>>> value = loss(logits, target, valid=None)   # (N, H, W) or (N, 1, H, W)
"""

from losslab.grammar import SpecError, format_spec, parse_spec
from losslab.losses._base import MaskInputs, MaskLoss
from losslab.losses.factory import HybridLoss, LossEquivalenceWarning, create_loss, loss_terms, loss_with_terms
from losslab.losses.registry import LossInfo, get_loss_info, list_losses, register_loss

__all__ = [
    "HybridLoss",
    "LossEquivalenceWarning",
    "LossInfo",
    "MaskInputs",
    "MaskLoss",
    "SpecError",
    "create_loss",
    "format_spec",
    "get_loss_info",
    "list_losses",
    "loss_terms",
    "loss_with_terms",
    "parse_spec",
    "register_loss",
]
