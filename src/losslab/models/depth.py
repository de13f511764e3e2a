"""Depth + mask: one shared U-Net encoder, two decoders (a depth head and a mask head).

The loss is one catalogue spec per head with a weight per head (the small mask + depth network's notes):

    L = depth_weight · depth_loss(depth, depth_gt) + mask_weight · mask_loss(mask_logits, mask_gt)

``depth_loss`` is built with the regression contract (raw predicted values against depth in
metres); ``mask_loss`` with the mask contract (logits against 0/1). The notes' three
combinations are ``depth_loss="2*rmse", mask_loss="bce + 2*dice"``, ``depth_loss="2*ssim",
mask_loss="dice"`` and ``depth_loss="2*rmse", mask_loss="bce"``. Depth pixels equal to 0 are
missing measurements (the 16-bit PNG convention) and are left out of the depth loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from losslab.losses.fields import loss_field
from losslab.models._dense import DenseModel, DenseTargets, HeadLoss, dense_target, mask_losses
from losslab.models.registry import register_presets
from losslab.models.unet import UNetConfig, UNetDecoder, UNetEncoder

__all__ = ["SEED_COMBINATIONS", "DepthMaskConfig", "DepthMaskNet"]

#: The notes' three loss combinations, as (depth_loss, mask_loss).
SEED_COMBINATIONS = (("2*rmse", "bce + 2*dice"), ("2*ssim", "dice"), ("2*rmse", "bce"))


@dataclass
class DepthMaskConfig(UNetConfig):
    """The depth + mask network's losses and shape: ``UNetConfig`` (the shared encoder's
    ``base_channels`` and ``depth``, the network depth, not the target) and

    Attributes:
        depth_loss: catalogue spec on depth values (regression contract).
        depth_weight: weight of the depth head's loss (``mask_weight`` weighs the mask head's).
    """

    mask_loss: str = loss_field("bce + 2*dice")
    base_channels: int = 16
    depth_loss: str = loss_field("2*rmse", contract="regression")
    depth_weight: float = 1.0


class DepthMaskNet(DenseModel):
    """Shared encoder, a depth decoder and a mask decoder, each with its own catalogue loss.

    Shape:
        - images: ``(B, in_channels, S, S)``.
        - eval output: ``{"mask": logits (B, 1, S, S), "depth": values (B, 1, S, S)}``.
        - training output: ``{"loss_depth": scalar, "loss_mask": scalar}`` plus logged terms.
    """

    def __init__(self, config: DepthMaskConfig):
        super().__init__()
        self.config = config
        self.encoder = UNetEncoder(config.in_channels, config.base_channels, config.depth)
        self.depth_decoder = UNetDecoder(config.base_channels, config.depth, out_channels=1)
        self.mask_decoder = UNetDecoder(config.base_channels, config.depth, out_channels=1)
        self.depth_loss = HeadLoss(config, "depth_loss", config.depth_weight)
        self.mask_loss = HeadLoss(config, "mask_loss", config.mask_weight)

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        features = self.encoder(images)
        return {"mask": self.mask_decoder(features), "depth": self.depth_decoder(features)}

    def losses(self, outputs: dict[str, Tensor], targets: DenseTargets) -> dict[str, Tensor]:
        pred = outputs["depth"]
        gt = dense_target(targets, "depth", pred)
        valid = gt > 0
        # All-valid is the common case: no mask lets every loss take its unmasked path.
        valid_arg = None if bool(valid.all()) else valid.to(pred.dtype)
        out = {"loss_depth": self.depth_loss(pred, gt, valid_arg)}
        out.update({f"depth/{k}": v for k, v in self.depth_loss.terms(pred, gt, valid_arg).items()})
        out.update(mask_losses(self.mask_loss, outputs["mask"], targets))
        return out


#: Each preset's changes from ``DepthMaskConfig``'s defaults, and its description.
PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "depthmask": ({}, "depth + mask: shared U-Net encoder (16 channels, depth 4), two decoders, 128 px"),
    "depthmask_tiny": (
        {"base_channels": 8, "depth": 3, "input_size": 64},
        "depth + mask, tiny: shared U-Net encoder (8 channels, depth 3), two decoders, 64 px",
    ),
}

register_presets(PRESETS, DepthMaskConfig, DepthMaskNet, family="dense", task="dense")
