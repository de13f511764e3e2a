"""YOLACT's feature pyramid: P3-P5 from the backbone, P6 and P7 by strided convs on P5.

As in YOLACT's ``FPN`` (``use_conv_downsample=True``, ``num_downsample=2``,
``relu_pred_layers=True``, ``relu_downsample_layers=False``): 1x1 laterals, bilinear top-down
upsampling, a 3x3 conv with ReLU on each merged level, and two stride-2 3x3 convs without ReLU.

A stride-2 conv whose input is one pixel high or wide (P6 -> P7 at 64 px, P5 -> P6 at 32 px) runs in
float32 when it trains under CPU autocast: there torch 2.14's bf16 weight gradient of the padded
conv now and then holds NaN in kernel taps that see only padding (``_downsample``).
"""

from __future__ import annotations

import torch
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
            outs.append(_downsample(conv, outs[-1]))
        return outs


def _downsample(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``, in float32 for a one-pixel-high or -wide ``x`` trained under CPU autocast.

    With bf16 autocast on the CPU (torch 2.14), the weight gradient of a 3x3 stride-2 conv with
    padding 1 on a 1x1 input can hold NaN in taps that see only padding, taken from the memory it
    reuses: 14-19 of 20 steps once freed memory holds NaN
    (``test_fpn_one_pixel_downsample_trains_under_cpu_bf16_with_finite_gradients``), and in the
    first step of about a third of 64-px training runs, each skipped; a 2x2 input or stride 1 did
    not. The map is one pixel wide: float32 costs nothing.

    Shape:
        - x ``(B, C, H, W)``; output ``(B, C, ceil(H / 2), ceil(W / 2))``.
    """
    tiny = min(x.shape[-2:]) == 1 and x.device.type == "cpu" and torch.is_grad_enabled()
    if tiny and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return conv(x.float())
    return conv(x)
