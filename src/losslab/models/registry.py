"""Named model presets over one builder per family (segment-anything's ``sam_model_registry``).

A preset registers a function ``(**overrides) -> nn.Module`` with its family and task. Every
model built here follows one interface (torchvision's detection models):

- ``model(images, targets)`` in training mode returns ``dict[str, Tensor]`` of weighted loss
  terms (the trainer sums them);
- ``model(images)`` in eval mode returns predictions (per family, documented there);
- ``model.config`` is the resolved config dataclass; ``model.task`` is ``"instance"`` or
  ``"dense"``.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from losslab.config import suggest

__all__ = ["ModelInfo", "create_model", "get_model_info", "list_models", "register_model"]


@dataclass(frozen=True)
class ModelInfo:
    """A preset: its name, family (``"yolact"``, ``"maskrcnn"``, ...), task and builder."""

    name: str
    family: str
    task: str
    description: str
    builder: Callable[..., nn.Module]


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str, *, family: str, task: str, description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a preset builder ``(**overrides) -> nn.Module`` under ``name``."""
    if task not in ("instance", "dense"):
        raise ValueError(f"task must be 'instance' or 'dense', got {task!r}")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            warnings.warn(f"model {name!r} registered again; the new entry replaces the old", stacklevel=2)
        _MODELS[name] = ModelInfo(name=name, family=family, task=task, description=description, builder=fn)
        return fn

    return deco


def _ensure_loaded() -> None:
    from losslab.models import _presets  # noqa: F401


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Sorted preset names, optionally filtered by a glob and a family."""
    _ensure_loaded()
    return sorted(
        n for n, i in _MODELS.items() if fnmatch.fnmatch(n, pattern) and (family is None or i.family == family)
    )


def get_model_info(name: str) -> ModelInfo:
    """The ``ModelInfo`` of a preset; an unknown name raises with the closest names."""
    _ensure_loaded()
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}.{suggest(name, _MODELS)} Presets: {', '.join(sorted(_MODELS))}"
        ) from None


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the preset ``name`` with ``key=value`` overrides of its config dataclass.

    Raises:
        ValueError: an unknown preset or config key (with suggestions) or a bad value.
    """
    return get_model_info(name).builder(**overrides)
