"""Model configs declare their loss fields: ``mask_loss: str = loss_field("bce")``.

The field's metadata says which contract its spec takes and whether the model's ``valid`` is a crop
(``uncropped(...)`` undoes it), so that

- resolving a model config (``ModelInfo.config``, under every ``losslab train``, ``eval``, ``study
  run`` and ``--dry-run``) checks each spec by building it once: a bad spec is refused with the field,
  the position and the closest names before any data is read or anything is written;
- the model builds its losses from the same declaration (``build_loss``);
- study specs learn which key takes which contract from the registered configs (``loss_contracts``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LOSS_FIELD", "build_loss", "check_loss_fields", "loss_contracts", "loss_field", "loss_fields"]

#: The metadata key of a loss field.
LOSS_FIELD = "losslab_loss"


def loss_field(default: str, contract: str = "mask", crop: bool = False) -> Any:
    """A dataclass field holding a loss spec of ``contract`` (``"mask"``, ``"regression"``, ``"box"``,
    ``"class"``); ``crop``: the model passes a crop as ``valid`` (YOLACT)."""
    return dataclasses.field(default=default, metadata={LOSS_FIELD: {"contract": contract, "crop": crop}})


def loss_fields(config: Any) -> dict[str, dict[str, Any]]:
    """``{field name: {"contract", "crop"}}`` of a config dataclass (instance or class)."""
    return {f.name: dict(f.metadata[LOSS_FIELD]) for f in dataclasses.fields(config) if LOSS_FIELD in f.metadata}


def build_loss(config: Any, name: str, reduction: str = "mean", check_inputs: bool = True) -> nn.Module:
    """The loss module of ``config``'s loss field ``name``, with the field's contract and crop
    (``check_inputs``: as ``create_loss``)."""
    from losslab.losses.factory import create_loss

    meta = loss_fields(config)[name]
    spec = getattr(config, name)
    return create_loss(spec, reduction, meta["contract"], crop=meta["crop"], check_inputs=check_inputs)


def check_loss_fields(config: Any) -> None:
    """Build every loss field's spec once; equivalence warnings pass through.

    Raises:
        ValueError: a bad spec, naming the field (``mask_loss='bogus': unknown loss ...``) with the
            position in the spec and the closest names.
    """
    for name in loss_fields(config):
        try:
            build_loss(config, name)
        except ValueError as exc:
            raise ValueError(f"{name}={getattr(config, name)!r}: {exc}") from None


def loss_contracts(configs: list[Any]) -> dict[str, str]:
    """``{field name: contract}`` over the given config classes (``"depth_loss": "regression"``)."""
    out: dict[str, str] = {}
    for config in configs:
        out.update({name: meta["contract"] for name, meta in loss_fields(config).items()})
    return out
