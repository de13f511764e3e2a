"""A small U-Net (Ronneberger et al. 2015) for binary masks, with configurable width and depth.

``base_channels`` is the width of the first level; each of the ``depth`` down-sampling steps
doubles it. Every level is two 3x3 conv + BatchNorm + ReLU; down-sampling is a 2x2 max-pool,
up-sampling a 2x2 transposed convolution, and the decoder concatenates the encoder's feature
map of the same level (the skip connection). Any input size works: when a side is not a
multiple of ``2**depth`` the up-sampled map is resized to its skip's size.

The encoder and decoder are separate modules so that ``depth.py`` can share one encoder
between two decoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.models._dense import DenseConfig, DenseModel, DenseTargets, HeadLoss, mask_losses
from losslab.models.registry import register_presets

__all__ = ["UNet", "UNetConfig", "UNetDecoder", "UNetEncoder", "conv_block"]


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU (U-Net's level block)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def level_widths(base_channels: int, depth: int) -> list[int]:
    """Channel width of each level, from the input level to the bottleneck (``depth + 1`` values)."""
    return [base_channels * 2**i for i in range(depth + 1)]


class UNetEncoder(nn.Module):
    """The contracting path.

    Shape:
        input ``(B, C_in, H, W)``; output: the ``depth + 1`` feature maps, level ``i`` is
        ``(B, base·2^i, H / 2^i, W / 2^i)`` (the last is the bottleneck).
    """

    def __init__(self, in_channels: int, base_channels: int, depth: int):
        super().__init__()
        widths = level_widths(base_channels, depth)
        self.levels = nn.ModuleList(
            conv_block(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features


class UNetDecoder(nn.Module):
    """The expanding path with skip connections and a 1x1 output convolution.

    Shape:
        input: the encoder's feature maps; output ``(B, out_channels, H, W)`` (raw values).
    """

    def __init__(self, base_channels: int, depth: int, out_channels: int = 1):
        super().__init__()
        widths = level_widths(base_channels, depth)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth))
        self.blocks = nn.ModuleList(conv_block(2 * widths[i], widths[i]) for i in range(depth))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = features[-1]
        for i in reversed(range(len(self.ups))):
            skip = features[i]
            x = self.ups[i](x)
            if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: floor in max-pool, exact x2 here
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.blocks[i](torch.cat([skip, x], dim=1))
        return self.head(x)


@dataclass
class UNetConfig(DenseConfig):
    """A U-Net for binary masks: ``DenseConfig`` and

    Attributes:
        base_channels: width of the first level (doubles at each down-sampling).
        depth: number of down-sampling steps.
    """

    base_channels: int = 32
    depth: int = 4

    def check(self) -> None:
        super().check()
        if self.base_channels < 1 or self.depth < 1:
            raise ValueError(f"base_channels and depth must be >= 1, got {self.base_channels}, {self.depth}")
        if self.input_size < 2**self.depth:
            raise ValueError(
                f"input_size {self.input_size} is too small for depth {self.depth} (needs >= {2**self.depth})"
            )


class UNet(DenseModel):
    """U-Net for one foreground mask; the dense-model interface of ``_dense.DenseModel``.

    Shape:
        - images: ``(B, in_channels, S, S)``.
        - eval output: ``{"mask": logits (B, 1, S, S)}``; training: ``{"loss_mask": scalar, ...}``.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        self.encoder = UNetEncoder(config.in_channels, config.base_channels, config.depth)
        self.decoder = UNetDecoder(config.base_channels, config.depth, out_channels=1)
        self.mask_loss = HeadLoss(config, "mask_loss", config.mask_weight)

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        return {"mask": self.decoder(self.encoder(images))}

    def losses(self, outputs: dict[str, Tensor], targets: DenseTargets) -> dict[str, Tensor]:
        return mask_losses(self.mask_loss, outputs["mask"], targets)


#: Each preset's changes from ``UNetConfig``'s defaults, and its description.
PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "unet_tiny": ({"base_channels": 8, "depth": 3}, "U-Net, 8 base channels, depth 3, 128 px"),
    "unet": ({}, "U-Net, 32 base channels, depth 4, 128 px"),
}

register_presets(PRESETS, UNetConfig, UNet, family="dense", task="dense")
