"""Mask R-CNN (torchvision, ResNet + FPN) whose mask head loss is any catalogue spec."""

from losslab.models.maskrcnn.model import (
    BACKBONES,
    PRESETS,
    MaskRCNNConfig,
    MaskRCNNModel,
)
from losslab.models.maskrcnn.roi_heads import LossRoIHeads, PassThroughTransform, roi_mask_loss, roi_mask_targets

__all__ = [
    "BACKBONES",
    "PRESETS",
    "LossRoIHeads",
    "MaskRCNNConfig",
    "MaskRCNNModel",
    "PassThroughTransform",
    "roi_mask_loss",
    "roi_mask_targets",
]
