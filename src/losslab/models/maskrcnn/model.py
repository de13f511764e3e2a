"""Mask R-CNN (ResNet + FPN, torchvision) with a catalogue mask loss, and its presets.

``L = w_cls·L_cls + w_box·L_box + w_mask·L_mask (+ w_rpn·(L_objectness + L_rpn_box))``: the loss
of the Mask R-CNN custom-mask-loss page, where ``L_mask`` is the spec ``mask_loss`` applied to
the RoI mask logits of each RoI's ground-truth class against its RoI-aligned target
(``LossRoIHeads``). With ``mask_loss="bce"`` it is torchvision's Mask R-CNN exactly.

Input and output follow losslab's model interface (docs/architecture.md):

- training: ``model(images (B, 3, S, S), targets) -> {"loss_classifier", "loss_box_reg",
  "loss_mask", "loss_objectness", "loss_rpn_box_reg"}``, each already weighted. ``targets`` is a
  list of dicts with ``boxes`` xyxy, ``labels`` 1..C, ``masks`` uint8 ``(n, S, S)`` and optional
  ``iscrowd``; crowd instances and boxes without area are dropped (torchvision rejects the latter).
- eval: ``model(images) -> [{"boxes" (k, 4), "scores" (k,), "labels" (k,), "masks" (k, S, S)}]``,
  masks are probabilities in [0, 1] pasted at input size.

Images are taken as they come (already ``S x S`` and ImageNet-normalised): ``PassThroughTransform``
replaces torchvision's resize-and-normalise transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torchvision import models as tv_models
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.misc import FrozenBatchNorm2d

from losslab.losses.fields import build_loss, loss_field
from losslab.models.maskrcnn.roi_heads import LossRoIHeads, PassThroughTransform
from losslab.models.registry import register_presets

__all__ = ["BACKBONES", "PRESETS", "MaskRCNNConfig", "MaskRCNNModel"]

#: ResNet backbones and their ImageNet weights enum (used only with ``pretrained_backbone=true``).
BACKBONES = {
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet34": ("resnet34", "ResNet34_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "resnet101": ("resnet101", "ResNet101_Weights"),
}


# torchvision's names for the terms, and the config weight that scales each.
def _term_of(key: str) -> str:
    """The loss term a logged entry belongs to: ``mask/0.5*mse`` is a part of ``loss_mask``."""
    return "loss_mask" if key.startswith("mask/") else key


_TERM_WEIGHT = {
    "loss_classifier": "cls_weight",
    "loss_box_reg": "box_weight",
    "loss_mask": "mask_weight",
    "loss_objectness": "rpn_weight",
    "loss_rpn_box_reg": "rpn_weight",
}


@dataclass
class MaskRCNNConfig:
    """The shape and loss of a Mask R-CNN; torchvision's defaults unless a preset says otherwise.

    Attributes:
        mask_loss: catalogue spec of the mask loss (``"bce"`` is torchvision's own).
        num_classes: foreground classes C (labels 1..C; the background class is added).
        input_size: the square input side S the data pipeline produces.
        cls_weight, box_weight, mask_weight: weights of L_cls, L_box, L_mask.
        rpn_weight: weight of the two RPN terms (objectness, RPN box regression).
        backbone: ``resnet18`` / ``resnet34`` / ``resnet50`` / ``resnet101``.
        pretrained_backbone: load ImageNet weights (needs them in the torch cache or internet).
        trainable_layers: ResNet stages trained (0-5); ``None``: 3 if pretrained, else 5.
        fpn_channels: FPN width (torchvision: 256).
        anchor_sizes: one anchor size per FPN level (5 levels), aspect ratios 0.5, 1, 2.
        rpn_pre_nms_train, rpn_post_nms_train, rpn_pre_nms_test, rpn_post_nms_test: proposals kept.
        box_batch_size_per_image: RoIs sampled per image for the box and mask heads.
        representation_size: width of the box head's two MLP layers.
        mask_head_layers: widths of the mask head's 3x3 convolutions.
        box_score_thresh, box_nms_thresh, detections_per_img: inference post-processing.
    """

    mask_loss: str = loss_field("bce")
    num_classes: int = 1
    input_size: int = 512
    cls_weight: float = 1.0
    box_weight: float = 1.0
    mask_weight: float = 1.0
    rpn_weight: float = 1.0
    backbone: str = "resnet50"
    pretrained_backbone: bool = False
    trainable_layers: int | None = None
    fpn_channels: int = 256
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    rpn_pre_nms_train: int = 2000
    rpn_post_nms_train: int = 2000
    rpn_pre_nms_test: int = 1000
    rpn_post_nms_test: int = 1000
    box_batch_size_per_image: int = 512
    representation_size: int = 1024
    mask_head_layers: tuple[int, ...] = (256, 256, 256, 256)
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_img: int = 100

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` on values that cannot build a model (run on every new config)."""
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r} is not one of {sorted(BACKBONES)}")
        if self.num_classes < 1 or self.input_size < 32:
            raise ValueError(f"need num_classes >= 1 and input_size >= 32, got {self.num_classes}, {self.input_size}")
        if len(self.anchor_sizes) != 5:
            raise ValueError(f"anchor_sizes needs one size per FPN level (5), got {self.anchor_sizes}")
        if not self.mask_head_layers:
            raise ValueError("mask_head_layers needs at least one width, e.g. (256, 256, 256, 256)")
        if self.trainable_layers is not None and not 0 <= self.trainable_layers <= 5:
            raise ValueError(f"trainable_layers must be in 0..5, got {self.trainable_layers}")


def _resnet_fpn(cfg: MaskRCNNConfig) -> BackboneWithFPN:
    """A ResNet trunk with an FPN on stages 1-4 plus a max-pool level (torchvision's layout).

    Without pretrained weights every stage trains with ordinary BatchNorm (as torchvision does
    for ``weights_backbone=None``); with them, BatchNorm is frozen and the first stages too.
    """
    fn_name, weights_name = BACKBONES[cfg.backbone]
    weights = getattr(tv_models, weights_name).DEFAULT if cfg.pretrained_backbone else None
    norm = FrozenBatchNorm2d if cfg.pretrained_backbone else nn.BatchNorm2d
    trunk = getattr(tv_models, fn_name)(weights=weights, norm_layer=norm)
    trainable = cfg.trainable_layers if cfg.trainable_layers is not None else (3 if cfg.pretrained_backbone else 5)
    train_prefixes = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable]
    if trainable == 5:
        train_prefixes.append("bn1")
    for name, param in trunk.named_parameters():
        if not any(name.startswith(p) for p in train_prefixes):
            param.requires_grad_(False)
    stage2 = trunk.inplanes // 8  # 64 for ResNet-18/34, 256 for ResNet-50/101
    return BackboneWithFPN(
        trunk,
        return_layers={f"layer{k}": str(k - 1) for k in (1, 2, 3, 4)},
        in_channels_list=[stage2 * 2 ** (k - 1) for k in (1, 2, 3, 4)],
        out_channels=cfg.fpn_channels,
    )


def _clean_target(t: dict[str, Tensor], index: int, num_classes: int) -> dict[str, Tensor]:
    """The training target torchvision needs: crowd instances and area-less boxes removed."""
    for key in ("boxes", "labels", "masks"):
        if key not in t:
            raise ValueError(f"targets[{index}] has no {key!r}; Mask R-CNN needs boxes, labels and masks")
    boxes, labels, masks = t["boxes"], t["labels"], t["masks"]
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if "iscrowd" in t:
        keep &= ~torch.as_tensor(t["iscrowd"]).to(device=boxes.device, dtype=torch.bool)
    labels = labels[keep].to(torch.int64)
    if labels.numel() and (labels.min() < 1 or labels.max() > num_classes):
        raise ValueError(
            f"targets[{index}] has labels {labels.unique().tolist()} but the model has num_classes={num_classes} "
            f"(labels must be 1..{num_classes}); set num_classes to the dataset's class count"
        )
    return {"boxes": boxes[keep].float(), "labels": labels, "masks": masks[keep].to(torch.uint8)}


class MaskRCNNModel(MaskRCNN):
    """torchvision's ``MaskRCNN`` with ``LossRoIHeads`` (catalogue mask loss), a pass-through
    transform and weighted loss terms; see the module docstring for inputs and outputs.

    Shape:
        - images: ``(B, 3, S, S)`` normalised, or a list of ``(3, S, S)``.
        - training output: ``dict`` of five scalar ``loss_*`` terms.
        - eval output: per image ``boxes (k, 4)``, ``scores (k,)``, ``labels (k,)``, ``masks (k, S, S)``.
    """

    task = "instance"

    def __init__(self, config: MaskRCNNConfig):
        # The RoI-aligned mask is the region: no crop to undo (the field says crop=False).
        mask_loss = build_loss(config, "mask_loss")
        backbone = _resnet_fpn(config)
        width = config.fpn_channels
        mask_width = config.mask_head_layers[-1]
        anchors = AnchorGenerator(sizes=tuple((s,) for s in config.anchor_sizes), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
        super().__init__(
            backbone,
            num_classes=None,
            min_size=config.input_size,
            max_size=config.input_size,
            rpn_anchor_generator=anchors,
            rpn_pre_nms_top_n_train=config.rpn_pre_nms_train,
            rpn_post_nms_top_n_train=config.rpn_post_nms_train,
            rpn_pre_nms_top_n_test=config.rpn_pre_nms_test,
            rpn_post_nms_top_n_test=config.rpn_post_nms_test,
            box_score_thresh=config.box_score_thresh,
            box_nms_thresh=config.box_nms_thresh,
            box_detections_per_img=config.detections_per_img,
            box_batch_size_per_image=config.box_batch_size_per_image,
            box_head=TwoMLPHead(width * 7 * 7, config.representation_size),
            box_predictor=FastRCNNPredictor(config.representation_size, config.num_classes + 1),
            mask_head=MaskRCNNHeads(width, list(config.mask_head_layers), 1),
            mask_predictor=MaskRCNNPredictor(mask_width, mask_width, config.num_classes + 1),
        )
        self.roi_heads = LossRoIHeads.from_heads(self.roi_heads, mask_loss)
        self.transform = PassThroughTransform(config.input_size)
        self.config = config

    def forward(  # type: ignore[override]
        self, images: Tensor | list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if isinstance(images, Tensor):
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f"images must be (B, 3, S, S), got {tuple(images.shape)}")
            images = list(images)
        if self.training:
            if targets is None or len(targets) != len(images):
                got = "none" if targets is None else len(targets)
                raise ValueError(f"training needs one target dict per image ({len(images)}), got {got}")
            clean = [_clean_target(t, i, self.config.num_classes) for i, t in enumerate(targets)]
            losses = super().forward(images, clean)
            # a hybrid mask loss's terms (``mask/<term>``) are weighted as loss_mask is
            return {k: v * getattr(self.config, _TERM_WEIGHT[_term_of(k)]) for k, v in losses.items()}
        detections = super().forward(images)
        for det in detections:
            det["masks"] = det["masks"][:, 0]  # (k, 1, S, S) -> (k, S, S)
        return detections


#: Each preset's changes from ``MaskRCNNConfig``'s defaults, and its description.
PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "maskrcnn_tiny": (
        {
            "input_size": 256,
            "backbone": "resnet18",
            "fpn_channels": 64,
            "anchor_sizes": (16, 32, 64, 128, 256),
            "rpn_pre_nms_train": 600,
            "rpn_post_nms_train": 300,
            "rpn_pre_nms_test": 300,
            "rpn_post_nms_test": 150,
            "box_batch_size_per_image": 128,
            "representation_size": 256,
            "mask_head_layers": (64, 64),
            "detections_per_img": 50,
        },
        "Mask R-CNN, ResNet-18 FPN (64 channels), 256 px, few proposals: trains on a CPU",
    ),
    "maskrcnn_r50": ({}, "Mask R-CNN, ResNet-50 FPN, torchvision's standard heads, 512 px"),
}

register_presets(PRESETS, MaskRCNNConfig, MaskRCNNModel, family="maskrcnn", task="instance")
