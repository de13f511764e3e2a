"""YOLACT++'s fast mask re-scoring network (TPAMI 2020, Sec. 4.1).

A small conv net reads a predicted (cropped) mask at prototype resolution and predicts its IoU
with the ground truth for every class; at inference the class score is multiplied by the IoU
predicted for the detected class. YOLACT's ``maskiou_net``: five 3x3 stride-2 convs (8, 16, 32,
64, 128 channels, no padding) and a 1x1 conv to C channels, each with ReLU, then global max
pooling.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MaskIoUNet"]

#: Smallest side the five unpadded stride-2 convs accept (63 -> 31 -> 15 -> 7 -> 3 -> 1).
MIN_SIDE = 63


class MaskIoUNet(nn.Module):
    """Predicted mask IoU per class.

    Shape:
        - input: ``(N, 1, H, W)`` mask probabilities at prototype resolution.
        - output: ``(N, C)`` non-negative IoU estimates.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (8, 16, 32, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, stride=2), nn.ReLU(inplace=True)]
            cin = w
        layers += [nn.Conv2d(cin, num_classes, 1), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, masks: Tensor) -> Tensor:
        h, w = masks.shape[-2:]
        if h < MIN_SIDE or w < MIN_SIDE:
            # Small inputs (prototypes of a < 252 px image): pad with zeros, which is what a
            # cropped mask holds outside its box anyway.
            masks = F.pad(masks, (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h)))
        x = self.net(masks)
        return x.amax(dim=(2, 3))
