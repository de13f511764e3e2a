"""Named model presets over one builder per family (segment-anything's ``sam_model_registry``,
timm's ``register_model``).

The preset protocol (docs/architecture.md, "Models"): a preset is registered once with
``register_model(name, defaults, build, family=..., task=..., description=...)``, where

- ``defaults`` is the preset's config dataclass (its ``__post_init__`` checks the values), and
- ``build(config) -> nn.Module`` builds the network from a resolved config.

The registry derives everything else from that pair: ``model_config(name, **overrides)`` is the
preset's config with checked ``key=value`` overrides (no weights are built), and
``create_model(name, **overrides)`` is ``build(model_config(name, **overrides))``. Every model built
here follows one interface (torchvision's detection models):

- ``model(images, targets)`` in training mode returns ``dict[str, Tensor]`` of weighted loss
  terms (the trainer sums them);
- ``model(images)`` in eval mode returns predictions (per family, documented there);
- ``model.config`` is the resolved config dataclass; ``model.task`` is ``"instance"`` or
  ``"dense"``.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, is_dataclass
from typing import TYPE_CHECKING, Any

from losslab.config import apply_overrides, lookup

if TYPE_CHECKING:  # the registry itself stays importable without torch (study specs read it)
    from torch import nn

__all__ = [
    "ModelInfo",
    "create_model",
    "get_model_info",
    "list_models",
    "model_config",
    "register_model",
    "register_presets",
    "registered",
    "unregister_model",
]

TASKS = ("instance", "dense")


@dataclass(frozen=True)
class ModelInfo:
    """A preset: name, family (``"yolact"``, ``"maskrcnn"``, ``"dense"``), task, its default config
    dataclass and the function that builds the network from a config.

    ``config(**overrides)`` is the preset's config factory: a checked copy of ``defaults``.
    """

    name: str
    family: str
    task: str
    description: str
    defaults: Any
    build: Callable[[Any], nn.Module]

    def config(self, **overrides: Any) -> Any:
        """The resolved config with ``key=value`` overrides (strings are coerced to the field types).

        Raises:
            ValueError: an unknown key (with the closest keys), a value the config's check refuses, or a
                loss spec that does not build (every ``loss_field``, with the field, the position and the
                closest names): before any data is read or anything is written.
        """
        config = apply_overrides(self.defaults, overrides, where=self.name)
        from losslab.losses.fields import check_loss_fields  # here: the registry imports no torch

        check_loss_fields(config)
        return config


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str, defaults: Any, build: Callable[[Any], nn.Module], *, family: str, task: str, description: str
) -> ModelInfo:
    """Register the preset ``name``: the config dataclass ``defaults`` and ``build(config) -> nn.Module``.

    A name registered again warns and replaces the old entry. Returns the new ``ModelInfo``.

    Raises:
        ValueError: ``task`` is not ``"instance"`` or ``"dense"``.
        TypeError: ``defaults`` is not a dataclass instance or ``build`` is not callable.
    """
    if task not in TASKS:
        raise ValueError(f"task must be 'instance' or 'dense', got {task!r}")
    if not is_dataclass(defaults) or isinstance(defaults, type):
        raise TypeError(f"model {name!r}: defaults must be a config dataclass instance, got {defaults!r}")
    if not callable(build):
        raise TypeError(f"model {name!r}: build must be a callable config -> nn.Module, got {build!r}")
    if name in _MODELS:
        warnings.warn(f"model {name!r} registered again; the new entry replaces the old", stacklevel=2)
    info = ModelInfo(name=name, family=family, task=task, description=description, defaults=defaults, build=build)
    _MODELS[name] = info
    return info


def unregister_model(name: str) -> ModelInfo:
    """Remove the preset ``name`` (a test's or a plugin's) and return its entry.

    Raises:
        ValueError: no preset of that name.
    """
    info = get_model_info(name)
    del _MODELS[name]
    return info


def registered() -> bool:
    """Whether any preset is registered in this process yet (the families load on first lookup)."""
    return bool(_MODELS)


def _ensure_loaded() -> None:
    from losslab.models import _presets  # noqa: F401  (the families register on import)


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Sorted preset names, optionally filtered by a glob and a family."""
    _ensure_loaded()
    return sorted(
        n for n, i in _MODELS.items() if fnmatch.fnmatch(n, pattern) and (family is None or i.family == family)
    )


def get_model_info(name: str) -> ModelInfo:
    """The ``ModelInfo`` of a preset; an unknown name raises with the closest names."""
    _ensure_loaded()
    return lookup(_MODELS, name, "model", f"Presets: {', '.join(sorted(_MODELS))}")


def model_config(name: str, **overrides: Any) -> Any:
    """The config dataclass of preset ``name`` with ``key=value`` overrides, without building weights.

    Raises:
        ValueError: an unknown preset or config key (with suggestions) or a bad value.
    """
    return get_model_info(name).config(**overrides)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the preset ``name`` with ``key=value`` overrides of its config dataclass.

    Raises:
        ValueError: an unknown preset or config key (with suggestions) or a bad value.
    """
    info = get_model_info(name)
    return info.build(info.config(**overrides))


def register_presets(
    presets: Mapping[str, tuple[dict[str, Any], str]],
    config_cls: type,
    build: Callable[[Any], nn.Module],
    *,
    family: str,
    task: str,
) -> None:
    """Register a family's presets, each given in the one shape every family uses: its changes from
    ``config_cls``'s defaults and a description (``{"yolact_tiny": ({"input_size": 256, ...}, "...")}``)."""
    for name, (changes, description) in presets.items():
        register_model(name, config_cls(**changes), build, family=family, task=task, description=description)
