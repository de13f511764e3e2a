"""The YOLACT / YOLACT++ network: backbone, FPN, protonet, prediction head, and their loss.

``Yolact(config)`` follows the models contract (docs/architecture.md): in training mode
``model(images, targets)`` returns the weighted ``loss_*`` terms of ``MultiBoxLoss``; in eval mode
``model(images)`` returns per image ``boxes``, ``scores``, ``labels`` and ``masks``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from losslab.models import feature_cache
from losslab.models.yolact.anchors import level_scales, make_anchors
from losslab.models.yolact.backbone import build_backbone
from losslab.models.yolact.config import YolactConfig
from losslab.models.yolact.detect import detect
from losslab.models.yolact.fpn import FPN
from losslab.models.yolact.head import PredictionHead
from losslab.models.yolact.multibox_loss import MultiBoxLoss, YolactOutputs
from losslab.models.yolact.protonet import ProtoNet
from losslab.models.yolact.rescoring import MaskIoUNet
from losslab.precision import autocast_dtype

__all__ = ["Yolact", "count_parameters"]

_TARGET_KEYS = ("boxes", "labels", "masks")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class Yolact(nn.Module):
    """YOLACT (ICCV 2019) and, with ``dcn_stages``, 3 scales per level and ``use_maskiou``,
    YOLACT++ (TPAMI 2020).

    Args:
        config: the resolved ``YolactConfig``.

    Shape:
        - images: ``(B, 3, S, S)`` normalised; ``S`` is ``config.input_size`` (550 in the paper).
        - training output: ``dict`` of scalar ``loss_*`` terms and ``num_positives``.
        - eval output: ``list`` of ``B`` dicts: ``boxes (m, 4)`` xyxy pixels, ``scores (m,)``,
          ``labels (m,)`` in 1..C, ``masks (m, S, S)`` float in [0, 1].
    """

    task = "instance"

    def __init__(self, config: YolactConfig):
        super().__init__()
        self.config = config
        c = config
        self.backbone = build_backbone(
            c.backbone, c.pretrained_backbone, c.dcn_stages, c.dcn_interval, c.freeze_bn, c.freeze_at
        )
        self.fpn = FPN(self.backbone.out_channels, c.fpn_channels)
        self.protonet = ProtoNet(c.fpn_channels, c.proto_channels, c.num_prototypes)
        self.head = PredictionHead(c.fpn_channels, c.anchors_per_location, c.num_classes, c.num_prototypes)
        self.semantic = nn.Conv2d(c.fpn_channels, c.num_classes, 1) if c.semantic_head else None
        self.maskiou_net = MaskIoUNet(c.num_classes) if c.use_maskiou else None
        self.criterion = MultiBoxLoss(c)
        self._init_weights()
        self._anchor_cache: dict[tuple, Tensor] = {}
        self.feature_cache = feature_cache.SHARED if c.cache_features else None
        self._fingerprint: bytes | None = None  # of the backbone's weights, taken at first use
        if c.channels_last:
            self.to(memory_format=torch.channels_last)

    def _init_weights(self) -> None:
        # YOLACT: Xavier-uniform weights and zero biases outside the backbone.
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith("backbone"):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if "focal" in self.config.class_loss:
            self._init_class_prior(0.01)

    def _init_class_prior(self, pi: float) -> None:
        """Focal-loss prior (RetinaNet; YOLACT's ``focal_loss_init_pi``): background starts at 1 - pi."""
        k, C1 = self.config.num_prototypes, self.config.num_classes + 1
        bias = self.head.pred.bias.data.view(self.config.anchors_per_location, 4 + C1 + k)
        bias[:, 4] = math.log((1 - pi) / pi)
        bias[:, 5 : 4 + C1] = -math.log(C1 - 1) if C1 > 2 else 0.0

    def anchors(
        self, feature_sizes: list[tuple[int, int]], image_size: tuple[int, int], device: torch.device
    ) -> Tensor:
        """The ``(A, 4)`` cxcywh anchors for these feature sizes, cached."""
        key = (tuple(feature_sizes), image_size, str(device))
        if key not in self._anchor_cache:
            c = self.config
            scales = [
                level_scales(s, c.scales_per_level, c.input_size, c.anchor_reference_size) for s in c.anchor_scales
            ]
            self._anchor_cache[key] = make_anchors(
                feature_sizes, image_size, scales, c.aspect_ratios, c.square_anchors, device
            )
        return self._anchor_cache[key]

    def fuse_for_inference(self) -> Yolact:
        """Prepare for fast inference (FPS) and switch to eval mode; returns ``self``.

        Folds the backbone's batch norms into its convs and, with ``amp``, stores the network's
        weights in the autocast dtype (``losslab.precision.autocast_dtype``) so that autocast does
        not cast every weight again on every call. The mask re-scoring net stays in float32.
        The model can no longer train afterwards.
        """
        self.eval()
        self.feature_cache = None  # folded weights: inference only, timed without a cache
        self.backbone.fold_batchnorm()
        dtype = autocast_dtype(self.config.amp, next(self.parameters()).device)
        if dtype is not None:
            for part in (self.backbone, self.fpn, self.protonet, self.head):
                part.to(dtype)
        self._fused = True
        return self

    def train(self, mode: bool = True) -> Yolact:
        if mode and getattr(self, "_fused", False):
            raise ValueError("this Yolact was fused for inference (fuse_for_inference); rebuild it to train")
        return super().train(mode)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        dtype = autocast_dtype(self.config.amp, device)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def _backbone_features(self, x: Tensor) -> list[Tensor]:
        """``[C3, C4, C5]`` of ``x``, looked up in the feature cache when the model has one."""
        if self.feature_cache is None:
            return self.backbone(x)
        if self._fingerprint is None:
            self._fingerprint = feature_cache.module_fingerprint(self.backbone)
        return self.feature_cache(self.backbone, x, self._fingerprint + feature_cache.compute_context(x))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self._fingerprint = None  # new backbone weights: fingerprint them again at the next call
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def raw_outputs(self, images: Tensor) -> YolactOutputs:
        """The network's raw outputs (float32), before the loss or the detector."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = images.contiguous(memory_format=torch.channels_last) if self.config.channels_last else images
        with self._autocast(images.device):
            pyramid = self.fpn(self._backbone_features(x))
            protos = self.protonet(pyramid[0])
            loc, conf, coef = self.head(pyramid)
            segm = self.semantic(pyramid[0]) if self.semantic is not None and self.training else None
        sizes = [tuple(p.shape[-2:]) for p in pyramid]
        anchors = self.anchors(sizes, tuple(images.shape[-2:]), images.device)
        return YolactOutputs(
            loc=loc.float(),
            conf=conf.float(),
            coef=coef.float(),
            protos=protos.float(),
            anchors=anchors,
            segm=None if segm is None else segm.float(),
        )

    def forward(
        self, images: Tensor, targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("Yolact in training mode needs targets; call model.eval() for predictions")
            self._check_targets(images, targets)
            outputs = self.raw_outputs(images)
            with torch.autocast(images.device.type, enabled=False):  # the loss in float32 under any autocast
                return self.criterion(outputs, targets, self.maskiou_net)
        out = self.raw_outputs(images)
        c = self.config
        return detect(
            out.loc,
            out.conf,
            out.coef,
            out.protos,
            out.anchors,
            tuple(images.shape[-2:]),
            conf_thresh=c.conf_thresh,
            nms_thresh=c.nms_thresh,
            top_k=c.top_k,
            max_detections=c.max_detections,
            use_fast_nms=c.fast_nms,
            variances=c.variances,
            maskiou_net=self.maskiou_net,
        )

    @staticmethod
    def _check_targets(images: Tensor, targets: list[dict[str, Tensor]]) -> None:
        if len(targets) != images.shape[0]:
            raise ValueError(f"got {images.shape[0]} images but {len(targets)} targets")
        for i, t in enumerate(targets):
            missing = [k for k in _TARGET_KEYS if k not in t]
            if missing:
                raise ValueError(f"target {i} lacks {missing}; a target needs boxes, labels, masks")
            n = t["boxes"].shape[0]
            if t["labels"].shape[0] != n or t["masks"].shape[0] != n:
                raise ValueError(
                    f"target {i}: boxes {tuple(t['boxes'].shape)}, labels {tuple(t['labels'].shape)} and "
                    f"masks {tuple(t['masks'].shape)} must describe the same number of instances"
                )
            if n and t["masks"].shape[-2:] != images.shape[-2:]:
                raise ValueError(
                    f"target {i}: masks {tuple(t['masks'].shape)} must have the image size {tuple(images.shape[-2:])}"
                )
