"""Mask R-CNN's RoI heads with a pluggable mask loss, and a transform that passes inputs through.

torchvision's ``RoIHeads.forward`` calls its module-level ``maskrcnn_loss`` (per-pixel BCE) with
no hook to replace it. ``LossRoIHeads`` subclasses ``RoIHeads`` and re-implements only the
training path of ``forward`` so that the mask term is ``roi_mask_loss`` with any catalogue
loss; inference is torchvision's own code, untouched. Nothing in torchvision is patched.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss, project_masks_on_boxes
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from losslab.losses import loss_with_terms

__all__ = ["LossRoIHeads", "PassThroughTransform", "roi_mask_loss", "roi_mask_targets"]


def roi_mask_targets(
    proposals: list[Tensor], gt_masks: list[Tensor], gt_labels: list[Tensor], matched_idxs: list[Tensor], size: int
) -> tuple[Tensor, Tensor]:
    """The RoI-aligned ground-truth masks and classes of the positive proposals.

    Each proposal's matched ground-truth mask is cropped to the proposal box and resized to
    ``size x size`` by ``roi_align`` (torchvision's ``project_masks_on_boxes``), as in Mask R-CNN.

    Shape:
        - proposals: per image ``(P_i, 4)`` xyxy boxes of the positive proposals.
        - gt_masks: per image ``(G_i, H, W)`` uint8 or float 0/1.
        - gt_labels: per image ``(G_i,)`` int64 in 1..C.
        - matched_idxs: per image ``(P_i,)`` index of the matched ground truth.
        - output: targets ``(P, size, size)`` float in [0, 1] and labels ``(P,)``, ``P = Σ P_i``.
    """
    labels = [lab[idx] for lab, idx in zip(gt_labels, matched_idxs, strict=True)]
    targets = [project_masks_on_boxes(m, p, i, size) for m, p, i in zip(gt_masks, proposals, matched_idxs, strict=True)]
    # roi_align averages bilinear samples of a 0/1 mask: the result is in [0, 1] up to rounding,
    # and the mask contract checks that range exactly.
    return torch.cat(targets, dim=0).clamp_(0.0, 1.0), torch.cat(labels, dim=0)


def roi_mask_loss(
    loss: nn.Module,
    mask_logits: Tensor,
    proposals: list[Tensor],
    gt_masks: list[Tensor],
    gt_labels: list[Tensor],
    matched_idxs: list[Tensor],
) -> Tensor:
    """Mask R-CNN's mask loss with any mask-contract ``loss``: the logits of each RoI's
    ground-truth class against its RoI-aligned target. With ``create_loss("bce")`` this equals
    torchvision's ``maskrcnn_loss`` (both average the per-pixel BCE over every RoI pixel).

    Shape:
        - mask_logits: ``(P, C + 1, M, M)``, one mask per class for each positive proposal.
        - proposals, gt_masks, gt_labels, matched_idxs: as ``roi_mask_targets``.
        - output: scalar (a graph-keeping zero when there is no positive proposal).
    """
    return roi_mask_loss_terms(loss, mask_logits, proposals, gt_masks, gt_labels, matched_idxs)[0]


def roi_mask_loss_terms(
    loss: nn.Module,
    mask_logits: Tensor,
    proposals: list[Tensor],
    gt_masks: list[Tensor],
    gt_labels: list[Tensor],
    matched_idxs: list[Tensor],
) -> tuple[Tensor, dict[str, Tensor]]:
    """``roi_mask_loss`` and, for a hybrid spec, its weighted terms (their sum is the loss; ``{}``
    for a single loss or without positive proposals)."""
    size = mask_logits.shape[-1]
    targets, labels = roi_mask_targets(proposals, gt_masks, gt_labels, matched_idxs, size)
    if targets.numel() == 0:
        return mask_logits.sum() * 0.0, {}
    logits = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels]
    return loss_with_terms(loss, logits, targets.to(logits.dtype))


class LossRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` whose training mask loss is ``mask_loss`` (a catalogue module).

    Args:
        mask_loss: a mask-contract loss ``(logits (P, M, M), target (P, M, M)) -> scalar``.
        *args, **kwargs: ``RoIHeads``'s own arguments (box and mask pooling, heads, predictors,
            matcher thresholds, sampler, inference thresholds).
    """

    def __init__(self, *args, mask_loss: nn.Module, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_loss = mask_loss

    @classmethod
    def from_heads(cls, heads: RoIHeads, mask_loss: nn.Module) -> LossRoIHeads:
        """The same heads (the same submodules, thresholds and sampler) with ``mask_loss``."""
        return cls(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            heads.proposal_matcher.high_threshold,
            heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image,
            heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights,
            heads.score_thresh,
            heads.nms_thresh,
            heads.detections_per_img,
            mask_roi_pool=heads.mask_roi_pool,
            mask_head=heads.mask_head,
            mask_predictor=heads.mask_predictor,
            mask_loss=mask_loss,
        )

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if not self.training:
            return super().forward(features, proposals, image_shapes, targets)
        if targets is None or not self.has_mask():
            raise ValueError("LossRoIHeads in training mode needs targets and a mask head")
        proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)

        # The mask branch learns from the positive proposals only (label > 0), as in torchvision.
        pos = [torch.where(lab > 0)[0] for lab in labels]
        mask_proposals = [p[i] for p, i in zip(proposals, pos, strict=True)]
        pos_matched = [m[i] for m, i in zip(matched_idxs, pos, strict=True)]
        mask_features = self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes))
        mask_logits = self.mask_predictor(mask_features)
        loss_mask, terms = roi_mask_loss_terms(
            self.mask_loss,
            mask_logits,
            mask_proposals,
            [t["masks"] for t in targets],
            [t["labels"] for t in targets],
            pos_matched,
        )
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg, "loss_mask": loss_mask}
        losses.update({f"mask/{label}": value.detach() for label, value in terms.items()})  # logged only
        return [], losses


class PassThroughTransform(GeneralizedRCNNTransform):
    """A ``GeneralizedRCNNTransform`` that neither normalises nor resizes.

    losslab's data pipeline already gives ``(3, S, S)`` images normalised with ImageNet mean/std
    and targets in input pixels; torchvision's transform would normalise a second time and
    rescale to ``min_size``. This one only batches (zero padding at the right and bottom up to a
    multiple of ``size_divisible``), and ``postprocess`` maps outputs back to the unpadded size,
    which is the input size: boxes and masks come out in input pixels.
    """

    def __init__(self, size: int, size_divisible: int = 32):
        super().__init__(min_size=size, max_size=size, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])
        self.size_divisible = size_divisible

    def normalize(self, image: Tensor) -> Tensor:
        if not image.is_floating_point():
            raise ValueError(f"images must be float tensors (normalised), got dtype {image.dtype}")
        return image

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor] | None]:
        return image, target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(no normalisation, no resize, size_divisible={self.size_divisible})"
