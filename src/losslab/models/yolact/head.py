"""The prediction head shared by every FPN level, and the training-only semantic head.

YOLACT's ``PredictionModule`` with ``share_prediction_module=True`` and
``extra_head_net=[(256, 3)]``: one 3x3 conv + ReLU, then three 3x3 convs predicting, per anchor,
C + 1 class scores, 4 box offsets and k mask coefficients (tanh). The three output convs read the
same input, so they are stored as one conv with concatenated filters: the same function, one
kernel launch instead of three.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PredictionHead"]


class PredictionHead(nn.Module):
    """Per-anchor class scores, box offsets and mask coefficients, for all levels at once.

    Args:
        channels: FPN width.
        num_anchors: anchors per location (aspect ratios x scales).
        num_classes: foreground classes C (C + 1 scores are predicted).
        num_prototypes: k.

    Shape:
        - input: list of ``(B, channels, H_l, W_l)``.
        - output: ``loc (B, A, 4)``, ``conf (B, A, C + 1)``, ``coef (B, A, k)`` with
          ``A = sum_l H_l * W_l * num_anchors``, ordered level, row, column, anchor.
    """

    def __init__(self, channels: int, num_anchors: int, num_classes: int, num_prototypes: int):
        super().__init__()
        self.num_anchors = num_anchors
        self.split = (4, num_classes + 1, num_prototypes)
        self.upfeature = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.pred = nn.Conv2d(channels, num_anchors * sum(self.split), 3, padding=1)

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        outs = []
        for x in feats:
            y = self.pred(self.upfeature(x))
            b, _, h, w = y.shape
            # (B, A*(4+C+1+k), H, W) -> (B, H*W*A, 4+C+1+k): anchors vary fastest, like anchors.py.
            outs.append(y.permute(0, 2, 3, 1).reshape(b, h * w * self.num_anchors, -1))
        out = torch.cat(outs, dim=1)
        loc, conf, coef = out.split(self.split, dim=-1)
        return loc, conf, torch.tanh(coef)
