"""YOLACT's feature pyramid: P3-P5 from the backbone, P6 and P7 by strided convs on P5.

As in YOLACT's ``FPN`` (``use_conv_downsample=True``, ``num_downsample=2``,
``relu_pred_layers=True``, ``relu_downsample_layers=False``): 1x1 laterals, bilinear top-down
upsampling, a 3x3 conv with ReLU on each merged level, and two stride-2 3x3 convs without ReLU.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FPN"]


class FPN(nn.Module):
    """Feature pyramid P3..P7 with ``channels`` channels each.

    Args:
        in_channels: channels of C3, C4, C5.
        channels: output width of every level.

    Shape:
        - input: ``[C3 (B, c3, H/8, W/8), C4 (B, c4, H/16, W/16), C5 (B, c5, H/32, W/32)]``.
        - output: five maps ``(B, channels, H/2^l, W/2^l)`` for l = 3..7.
    """

    def __init__(self, in_channels: list[int], channels: int = 256):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.downsample = nn.ModuleList(nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(2))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        x = self.lateral[-1](feats[-1])
        merged = [x]
        for i in range(len(feats) - 2, -1, -1):
            up = F.interpolate(x, size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            x = up + self.lateral[i](feats[i])
            merged.insert(0, x)
        outs = [F.relu(conv(m)) for conv, m in zip(self.smooth, merged, strict=True)]
        for conv in self.downsample:
            outs.append(conv(outs[-1]))
        return outs
