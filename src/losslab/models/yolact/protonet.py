"""The protonet: k prototype masks from P3 (YOLACT, Sec. 3.1, Fig. 3).

YOLACT's ``mask_proto_net``: three 3x3 convs, a x2 bilinear upsampling, a 3x3 conv and a 1x1
conv to k channels, each followed by ReLU (prototypes are unbounded above, non-negative).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ProtoNet"]


class ProtoNet(nn.Module):
    """Prototype masks at twice P3's resolution (input / 4).

    Args:
        in_channels: P3's channels.
        hidden: width of the hidden convs (256 in YOLACT).
        num_prototypes: k (32 in YOLACT).

    Shape:
        - input: ``(B, in_channels, H/8, W/8)``; output: ``(B, k, H/4, W/4)``, non-negative.
    """

    def __init__(self, in_channels: int, hidden: int = 256, num_prototypes: int = 32):
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.tail = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_prototypes, 1),
            nn.ReLU(inplace=True),
        )

    def forward(self, p3: Tensor) -> Tensor:
        x = self.head(p3)
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.tail(x)
