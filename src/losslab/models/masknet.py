"""MaskNet: the small fully convolutional mask network of the notes "Deciding Loss Function" (mask and depth losses).

Layer by layer as the notes' model summary (59,745 parameters at 3 input channels):

- two parallel stems, each ``Conv3x3(C_in, 32) -> ReLU -> BatchNorm -> Dropout``;
- their outputs concatenated (64 channels) and mixed by a ``Conv1x1(64, 32)``;
- ``Conv3x3(32, 64) -> ReLU -> BN -> Dropout``, ``Conv3x3(64, 64) -> ReLU -> BN -> Dropout``;
- ``Conv1x1(64, 1)``: one logit per pixel, at full resolution (no down-sampling).

The notes' model fed its two stems two images (the background and the scene). losslab's dense data
has one image per sample, so both stems read it (two independently initialised 3x3 filter
banks over the same input); an input with ``2 * in_channels`` channels is split between the
stems as in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from losslab.models._dense import DenseConfig, DenseModel, DenseTargets, HeadLoss, mask_losses
from losslab.models.registry import register_presets

__all__ = ["MaskNet", "MaskNetConfig"]


@dataclass
class MaskNetConfig(DenseConfig):
    """MaskNet's loss and shape: ``DenseConfig`` (any ``input_size`` works: fully convolutional;
    ``in_channels`` is each stem's input) and

    Attributes:
        dropout: dropout rate after each block (the notes' ``dropout_rate``, 0 by default).
    """

    dropout: float = 0.0

    def check(self) -> None:
        super().check()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def _block(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    """``Conv3x3 -> ReLU -> BatchNorm -> Dropout``, in the notes' order (activation before norm)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(c_out), nn.Dropout(dropout))


class MaskNet(DenseModel):
    """The notes' MaskNet with a catalogue mask loss.

    Shape:
        - images: ``(B, in_channels, S, S)`` (or ``(B, 2 * in_channels, S, S)``, one half per stem).
        - eval output: ``{"mask": logits (B, 1, S, S)}``; training: ``{"loss_mask": scalar, ...}``.
    """

    def __init__(self, config: MaskNetConfig):
        super().__init__()
        self.config = config
        c, p = config.in_channels, config.dropout
        self.stem_a = _block(c, 32, p)
        self.stem_b = _block(c, 32, p)
        self.mix = nn.Conv2d(64, 32, 1)
        self.body = nn.Sequential(_block(32, 64, p), _block(64, 64, p))
        self.head = nn.Conv2d(64, 1, 1)
        self.mask_loss = HeadLoss(config, "mask_loss", config.mask_weight)

    def accepted_channels(self) -> tuple[int, ...]:
        return (self.config.in_channels, 2 * self.config.in_channels)

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        c = self.config.in_channels
        a, b = (images, images) if images.shape[1] == c else (images[:, :c], images[:, c:])
        x = self.mix(torch.cat([self.stem_a(a), self.stem_b(b)], dim=1))
        return {"mask": self.head(self.body(x))}

    def losses(self, outputs: dict[str, Tensor], targets: DenseTargets) -> dict[str, Tensor]:
        return mask_losses(self.mask_loss, outputs["mask"], targets)


#: Each preset's changes from ``MaskNetConfig``'s defaults, and its description.
PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "masknet": ({}, "MaskNet (the small mask + depth network's notes): 59,745-parameter fully convolutional, 128 px"),
}

register_presets(PRESETS, MaskNetConfig, MaskNet, family="dense", task="dense")
