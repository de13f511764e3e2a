"""The loss catalogue: named segmentation, box and class losses that compose into hybrids.

>>> loss = create_loss("0.5*mse + bce")
>>> value = loss(logits, target, valid=None)   # (N, H, W) or (N, 1, H, W)

The names below load on first use (PEP 562), so that the torch-free modules of this package
(``check``: the spec check, ``fields``: model configs' loss fields, ``schedules``) import without
torch: a bad spec is refused before torch loads.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_WHERE = {
    "SpecError": "losslab.grammar",
    "format_spec": "losslab.grammar",
    "parse_spec": "losslab.grammar",
    "MaskInputs": "losslab.losses._base",
    "MaskLoss": "losslab.losses._base",
    "HybridLoss": "losslab.losses.factory",
    "LossEquivalenceWarning": "losslab.losses.check",
    "create_loss": "losslab.losses.factory",
    "loss_terms": "losslab.losses.factory",
    "loss_with_terms": "losslab.losses.factory",
    "LossInfo": "losslab.losses.registry",
    "get_loss_info": "losslab.losses.registry",
    "list_losses": "losslab.losses.registry",
    "register_loss": "losslab.losses.registry",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'losslab.losses' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
