"""ResNet backbone from torchvision returning C3, C4, C5, with YOLACT++'s deformable convolutions.

YOLACT++ (Bolya et al., TPAMI 2020, Sec. 4.2) replaces the 3x3 convolution of some blocks in
stages C3 to C5 by a modulated deformable convolution (DCNv2): the first block of each stage and
then every third block ("interval 3"), a trade-off between speed and accuracy.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn
from torchvision.ops import deform_conv2d
from torchvision.ops.misc import FrozenBatchNorm2d

__all__ = ["DeformConv3x3", "ResNetBackbone", "dcn_block_indices"]

_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
}


class DeformConv3x3(nn.Module):
    """A modulated deformable 3x3 convolution (DCNv2) that replaces a plain ``nn.Conv2d``.

    An ordinary 3x3 conv predicts 18 offsets and 9 modulation scalars per output location. It
    starts at zero, as in DCNv2: offsets 0 and modulation sigmoid(0) = 0.5, so at initialisation
    the layer is the conv it replaces at half strength (the batch norm after it rescales).

    Shape:
        - input: ``(B, C_in, H, W)``; output: ``(B, C_out, H / stride, W / stride)``.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3):
            raise ValueError(f"DeformConv3x3 replaces 3x3 convs, got kernel {conv.kernel_size}")
        self.stride = conv.stride
        self.padding = conv.padding
        self.dilation = conv.dilation
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.offset = nn.Conv2d(
            conv.in_channels, 27, 3, stride=conv.stride, padding=conv.padding, dilation=conv.dilation
        )
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.offset(x)
        offset, mask = out[:, :18], out[:, 18:]
        mask = torch.sigmoid(mask)
        dtype = torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else x.dtype
        # torchvision's deform_conv2d has no reduced-precision CPU kernel: run it in float32.
        return deform_conv2d(
            x.to(dtype).contiguous(),
            offset.to(dtype).contiguous(),
            self.weight.to(dtype),
            None if self.bias is None else self.bias.to(dtype),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask.to(dtype).contiguous(),
        ).to(x.dtype)


def dcn_block_indices(num_blocks: int, interval: int) -> list[int]:
    """Blocks of a stage that get a deformable conv: the first, then every ``interval``-th.

    YOLACT++'s ResNet-101 (``[3, 4, 23, 3]`` blocks, interval 3) gets blocks 0 and 3 in C3,
    0, 3, ..., 21 in C4 and 0 in C5.
    """
    return [i for i in range(num_blocks) if i == 0 or i % interval == 0]


class ResNetBackbone(nn.Module):
    """A torchvision ResNet cut after ``layer4``, returning the C3, C4, C5 feature maps.

    Args:
        name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
        pretrained: load torchvision's ImageNet weights (``IMAGENET1K_V1``; needs a download).
        dcn_stages: stages (2, 3, 4) whose 3x3 convs become deformable.
        dcn_interval: see ``dcn_block_indices``.
        freeze_bn: use ``FrozenBatchNorm2d`` (statistics and affine fixed).

    Shape:
        - input: ``(B, 3, H, W)``; outputs: strides 8, 16, 32 with ``out_channels`` channels.
    """

    def __init__(
        self,
        name: str = "resnet50",
        pretrained: bool = False,
        dcn_stages: tuple[int, ...] = (),
        dcn_interval: int = 3,
        freeze_bn: bool = False,
    ):
        super().__init__()
        builder = getattr(torchvision.models, name)
        weights = None
        if pretrained:
            weights = getattr(torchvision.models, _WEIGHTS[name]).IMAGENET1K_V1
        norm = FrozenBatchNorm2d if freeze_bn else nn.BatchNorm2d
        net = builder(weights=weights, norm_layer=norm)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        for stage in dcn_stages:
            layer = getattr(self, f"layer{stage}")
            for i in dcn_block_indices(len(layer), dcn_interval):
                # conv2 is the 3x3 of both BasicBlock and (torchvision's v1.5) Bottleneck.
                layer[i].conv2 = DeformConv3x3(layer[i].conv2)
        self.out_channels = [self._width(self.layer2), self._width(self.layer3), self._width(self.layer4)]

    @staticmethod
    def _width(layer: nn.Sequential) -> int:
        last = layer[-1]
        conv = last.conv3 if hasattr(last, "conv3") else last.conv2
        return conv.weight.shape[0] if hasattr(conv, "weight") else conv.out_channels

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold every batch norm into the conv before it (inference only: the statistics freeze).

        ``y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` is a conv with rescaled weights
        and a bias, so each block saves a memory-bound pass over its activations.
        """
        pairs = [(self.stem, "0", "1")]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                for i in (1, 2, 3):
                    if hasattr(block, f"bn{i}"):
                        pairs.append((block, f"conv{i}", f"bn{i}"))
                if block.downsample is not None:
                    pairs.append((block.downsample, "0", "1"))
        for parent, conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
            if isinstance(bn, nn.Identity):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
            setattr(parent, bn_name, nn.Identity())

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.layer1(self.stem(x))
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]
