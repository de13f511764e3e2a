"""The loss registry: one name per loss, with a small metadata record (timm-style).

A loss registers itself with ``@register_loss(...)`` on its class. The registry holds a frozen
``LossInfo`` per name that ``losslab losses list``, the spec parser and the study grid read.
"""

from __future__ import annotations

import fnmatch
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from losslab.config import lookup
from losslab.losses._base import missing_hooks
from losslab.losses.check import CONTRACTS, LossEntry

__all__ = ["CONTRACTS", "KINDS", "LossInfo", "get_loss_info", "list_losses", "loss_entries", "register_loss"]

#: What a loss can be. ``mask`` contract: pixel, region, structural, boundary.
KINDS = ("pixel", "region", "structural", "boundary", "box", "class")


# A simplifier maps a loss's resolved parameters to (equivalent spec, reason) or None. It states an
# equivalence under the mask contract; create_loss does not consult it for other contracts.
Simplifier = Callable[[dict[str, Any]], "tuple[str, str] | None"]


@dataclass(frozen=True)
class LossInfo:
    """What the catalogue knows about one loss.

    Attributes:
        name: the registry name used in specs (``"dice"``).
        cls: the ``nn.Module`` subclass; its keyword arguments are the spec parameters.
        kind: one of ``KINDS``.
        acts_on: ``"logits"``, ``"probabilities"``, ``"boxes"``, ``"offsets"`` or ``"scores"``.
        description: one line for ``losslab losses list``.
        source: the paper or library the definition follows.
        contracts: the input contracts the loss accepts (``("mask",)``, ``("mask", "regression")``).
        params: parameter name -> default, read from ``cls.__init__``.
        simplify: optional function returning a simpler equivalent spec for some parameters.
    """

    name: str
    cls: type[nn.Module]
    kind: str
    acts_on: str
    description: str
    source: str = ""
    contracts: tuple[str, ...] = ("mask",)
    params: dict[str, Any] = field(default_factory=dict)
    simplify: Simplifier | None = None


_REGISTRY: dict[str, LossInfo] = {}


#: Constructor arguments every loss takes from the factory, not from a spec.
_BASE_ARGS = ("self", "reduction", "contract", "check_inputs", "spec")


def _init_params(cls: type) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    out = {}
    for name, p in sig.parameters.items():
        if name in ("self", "reduction", "contract", "check_inputs", "spec") or p.kind in (
            p.VAR_POSITIONAL,
            p.VAR_KEYWORD,
        ):
            continue
        out[name] = None if p.default is inspect.Parameter.empty else p.default
    return out


def register_loss(
    name: str,
    *,
    kind: str,
    acts_on: str,
    description: str,
    source: str = "",
    contracts: tuple[str, ...] = ("mask",),
    simplify: Simplifier | None = None,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a loss to the catalogue under ``name``.

    Registering a name twice replaces the entry and warns. A class that leaves a method of its base
    undefined (``per_instance`` of a ``MaskLoss``, ``per_pixel`` of a ``PixelLoss``, ...) is refused
    with a ``TypeError`` naming it, so a plugin fails on import, not at its first training step.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    bad = set(contracts) - set(CONTRACTS)
    if bad:
        raise ValueError(f"unknown contracts {sorted(bad)}; valid: {CONTRACTS}")

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        missing = missing_hooks(cls)
        if missing:
            raise TypeError(
                f"loss {name!r}: {cls.__qualname__} does not define {', '.join(missing)}, which its base "
                f"class calls to compute the loss; define it (see docs/plugins.md)"
            )
        if name in _REGISTRY:
            warnings.warn(f"loss {name!r} registered again; the new entry replaces the old", stacklevel=2)
        _REGISTRY[name] = LossInfo(
            name=name,
            cls=cls,
            kind=kind,
            acts_on=acts_on,
            description=description,
            source=source,
            contracts=tuple(contracts),
            params=_init_params(cls),
            simplify=simplify,
        )
        cls.loss_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def _ensure_loaded() -> None:
    # Importing the implementation modules fills the registry.
    from losslab.losses import _catalogue  # noqa: F401


def list_losses(pattern: str = "*", kind: str | None = None, contract: str | None = None) -> list[str]:
    """Sorted names in the registry, optionally filtered by a glob, a kind or a contract."""
    _ensure_loaded()
    return sorted(
        n
        for n, info in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern)
        and (kind is None or info.kind == kind)
        and (contract is None or contract in info.contracts)
    )


def get_loss_info(name: str) -> LossInfo:
    """The ``LossInfo`` of ``name``; an unknown name raises with the closest valid names."""
    _ensure_loaded()
    return lookup(_REGISTRY, name, "loss", f"`losslab losses list` shows all {len(_REGISTRY)} losses.")


def loss_entries() -> dict[str, LossEntry]:
    """What the spec check (``losses.check.check_spec``) knows of every registered loss."""
    from losslab.losses._base import PixelLoss

    _ensure_loaded()
    return {
        n: LossEntry(n, info.contracts, dict(info.params), issubclass(info.cls, PixelLoss))
        for n, info in sorted(_REGISTRY.items())
    }
