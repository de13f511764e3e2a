"""Model families with a pluggable mask loss, behind one registry of named presets."""

from losslab.models.registry import (
    ModelInfo,
    create_model,
    get_model_info,
    list_models,
    model_config,
    register_model,
    register_presets,
    unregister_model,
)

__all__ = [
    "ModelInfo",
    "create_model",
    "get_model_info",
    "list_models",
    "model_config",
    "register_model",
    "register_presets",
    "unregister_model",
]
