"""YOLACT's ``MultiBoxLoss`` with pluggable class, box and mask losses from the catalogue.

Terms (dbolya/yolact ``layers/modules/multibox_loss.py``), each weighted and normalised as there:

- ``loss_class``: ``conf_alpha * class_loss(sum over the anchors it selects) / N_pos``
  (OHEM cross-entropy at 3:1 by default).
- ``loss_box``: ``bbox_alpha * box_loss(sum over positives) / N_pos``; smooth L1 on encoded
  offsets, or an IoU loss on decoded boxes.
- ``loss_mask``: ``mask_alpha * sum_i mask_loss_i / N_pos`` (a hybrid's weighted terms also come
  out, detached and normalised the same way, as ``mask/<term>``, for the log) where instance i is a positive anchor
  (at most ``masks_to_train`` per image, drawn at random, the sum scaled back up by
  ``#pos / #drawn``), its mask the logits ``protos @ coef``, its target the ground-truth mask
  bilinearly downsampled to the prototypes and binarised at 0.5, and ``valid`` YOLACT's crop: the
  ground-truth box with 1 pixel of padding on each side. What each kind of loss sees:

  - pixel losses (``bce``, ``mse``, ``l1``, ``huber``, ``log_cosh_bce``, ``focal``, ...): the
    per-pixel loss summed over the crop and divided by the ground-truth box area ``w * h`` in
    prototype pixels, without the padding. With ``bce`` this is YOLACT's
    ``mask_proto_normalize_emulate_roi_pooling`` term exactly (the original zeroes the predicted
    probabilities outside the crop, where the target is 0 too, so its BCE there is 0), for mask
    logits up to about 17: beyond, the original's float32 sigmoid rounds to 1 and its clamped BCE
    charges 100 per background pixel, while BCE-with-logits here keeps the true value
    (tests/models/test_dbolya_multibox_loss.py compares every term with a transcription). The
    padding makes this 1-3 % more than a mean over the crop for a large box and up to ~40 % more
    for a 4-pixel one, so small objects keep their weight; swapping the loss changes only the loss.
  - region losses (``dice``, ``jaccard``, ``tversky``, ``focal_tversky``, ``log_cosh_dice``): a
    ratio of sums over the crop's pixels, per instance.
  - structural losses: ``lovasz_hinge`` over the crop's pixels; ``ssim`` averages its map over the
    window centres inside the crop.
  - ``uncropped(TERM)``: the term over the whole prototype-resolution mask, a pixel loss summed and
    divided by its ``Hp * Wp``: YOLACT's ``mask_proto_double_loss`` (``bce + 0.5*uncropped(mse)`` is
    the YOLACT++ loss survey's "0.5·MSE + BCE" as its code ran; tests/models/test_survey_mask_loss.py
    checks it against a transcription). One difference: where an image has more than
    ``masks_to_train`` positives, the original adds its double loss before scaling the sum back up
    by ``#pos / #drawn``, and losslab scales every term.
- ``loss_semantic``: ``semantic_alpha * BCE-with-logits(sum) / (H * W) / B`` on the per-class union
  of the (non-crowd) masks.
- ``loss_maskiou`` (YOLACT++): ``maskiou_alpha * smooth_l1(sum) / N_pos`` between the IoU the
  re-scoring net predicts for the true class and the IoU of the cropped, thresholded mask.

``N_pos`` is the number of positive anchors in the batch, at least 1, so a batch without objects
gives zeros that still back-propagate. Values are returned as they are (a NaN stays a NaN) so that
the trainer can detect and skip a non-finite step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.losses import get_loss_info, loss_with_terms, parse_spec
from losslab.losses.fields import build_loss
from losslab.models.yolact.box_utils import box_area_pixels, box_mask, decode, match
from losslab.models.yolact.config import YolactConfig

__all__ = ["MultiBoxLoss", "YolactOutputs", "box_loss_acts_on"]


@dataclass
class YolactOutputs:
    """The raw network outputs that the loss and the detector read.

    Shape:
        - loc ``(B, A, 4)``, conf ``(B, A, C + 1)``, coef ``(B, A, k)``, anchors ``(A, 4)`` cxcywh,
          protos ``(B, k, Hp, Wp)``, segm ``(B, C, Hs, Ws)`` or ``None``.
    """

    loc: Tensor
    conf: Tensor
    coef: Tensor
    protos: Tensor
    anchors: Tensor
    segm: Tensor | None = None


def box_loss_acts_on(spec: str) -> str:
    """``"offsets"`` or ``"boxes"``: what the box-contract spec's terms all act on.

    Raises:
        ValueError: the spec mixes the two.
    """
    kinds = {get_loss_info(t.name).acts_on for t in parse_spec(spec)}
    if len(kinds) != 1:
        raise ValueError(
            f"box_loss={spec!r} mixes losses on encoded offsets and on decoded boxes ({sorted(kinds)}); "
            "use one kind, e.g. 'smooth_l1' or 'giou'"
        )
    return kinds.pop()


def _attached(value: Tensor, anchor: Tensor) -> Tensor:
    """``value`` as a float32 scalar in the graph of ``anchor`` (an empty selection gives a plain 0)."""
    value = value.float()
    if not value.requires_grad and anchor.requires_grad:
        value = value + 0.0 * anchor.sum()
    return value


class MultiBoxLoss(nn.Module):
    """YOLACT's training loss. See the module docstring for each term.

    Args:
        config: the model's ``YolactConfig`` (loss specs, weights, thresholds).
    """

    def __init__(self, config: YolactConfig):
        super().__init__()
        self.config = config
        # Shapes are ours and correct; skipping the NaN/range checks keeps a NaN a value (the
        # trainer skips the step) instead of an exception, and saves device syncs per step.
        self.class_loss = build_loss(config, "class_loss", reduction="sum", check_inputs=False)
        self.box_loss = build_loss(config, "box_loss", reduction="sum", check_inputs=False)
        self.box_on = box_loss_acts_on(config.box_loss)
        self.mask_loss = build_loss(config, "mask_loss", reduction="none", check_inputs=False)

    def forward(
        self, out: YolactOutputs, targets: list[dict[str, Tensor]], maskiou_net: nn.Module | None = None
    ) -> dict[str, Tensor]:
        """Weighted loss terms (``loss_*``) and detached values for logging.

        Args:
            out: the network's raw outputs.
            targets: per image ``boxes (n, 4)`` xyxy input pixels, ``labels (n,)`` in 1..C,
                ``masks (n, S, S)`` uint8/float, optional ``iscrowd (n,)`` bool.
            maskiou_net: YOLACT++'s re-scoring net, or ``None``.
        """
        cfg = self.config
        B = out.loc.shape[0]
        H, W = out.protos.shape[-2:]
        img_h, img_w = self._image_size(out, targets)
        scale = out.loc.new_tensor([img_w, img_h, img_w, img_h])
        conf_t, idx_t, loc_t, gts = [], [], [], []
        for t in targets:
            boxes = t["boxes"].to(out.loc.device, torch.float32) / scale
            labels = t["labels"].to(out.loc.device)
            crowd = t.get("iscrowd")
            crowd = torch.zeros_like(labels, dtype=torch.bool) if crowd is None else crowd.to(labels.device).bool()
            c, i, lt = match(
                boxes[~crowd], labels[~crowd], out.anchors, boxes[crowd],
                cfg.pos_iou, cfg.neg_iou, cfg.crowd_iou, cfg.variances,
            )  # fmt: skip
            conf_t.append(c)
            idx_t.append(i)
            loc_t.append(lt)
            masks = t["masks"][~crowd.to(t["masks"].device)].to(out.loc.device, torch.float32)
            gts.append((boxes[~crowd], labels[~crowd], masks))
        conf_t_b, idx_t_b, loc_t_b = torch.stack(conf_t), torch.stack(idx_t), torch.stack(loc_t)
        pos = conf_t_b > 0
        num_pos = pos.sum().clamp_min(1).float()

        losses = {
            "loss_class": cfg.conf_alpha * _attached(self.class_loss(out.conf.float(), conf_t_b), out.conf) / num_pos,
            "loss_box": cfg.bbox_alpha * self._box_term(out, pos, loc_t_b, idx_t_b, gts) / num_pos,
        }
        mask_sum, iou_sum, term_sums = self._mask_terms(out, pos, idx_t_b, gts, (H, W), maskiou_net)
        losses["loss_mask"] = cfg.mask_alpha * mask_sum / num_pos
        for label, value in term_sums.items():  # a hybrid's terms, as weighted in loss_mask, for the log
            losses[f"mask/{label}"] = (cfg.mask_alpha * value / num_pos).detach()
        if out.segm is not None:
            losses["loss_semantic"] = cfg.semantic_alpha * self._semantic_term(out.segm, gts) / B
        if maskiou_net is not None:
            losses["loss_maskiou"] = cfg.maskiou_alpha * iou_sum / num_pos
        losses["num_positives"] = num_pos.detach()
        return losses

    @staticmethod
    def _image_size(out: YolactOutputs, targets: list[dict[str, Tensor]]) -> tuple[int, int]:
        # Masks are (n, S, S) at the input size; the prototypes are input / 4.
        for t in targets:
            if t["masks"].dim() == 3:
                return int(t["masks"].shape[-2]), int(t["masks"].shape[-1])
        h, w = out.protos.shape[-2:]
        return 4 * h, 4 * w

    def _box_term(self, out: YolactOutputs, pos: Tensor, loc_t: Tensor, idx_t: Tensor, gts: list) -> Tensor:
        loc_p = out.loc[pos].float()
        if self.box_on == "offsets":
            value = self.box_loss(loc_p, loc_t[pos])
        else:
            anchors = out.anchors.unsqueeze(0).expand(pos.shape[0], -1, -1)[pos]
            pred = decode(loc_p, anchors, self.config.variances)
            matched = torch.cat([g[0][idx_t[b, pos[b]]] for b, g in enumerate(gts)]) if pos.any() else pred.detach()
            value = self.box_loss(pred, matched)
        return _attached(value, out.loc)

    def _mask_terms(
        self,
        out: YolactOutputs,
        pos: Tensor,
        idx_t: Tensor,
        gts: list,
        size: tuple[int, int],
        maskiou_net: nn.Module | None,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        cfg = self.config
        H, W = size
        logits, targets, valid, areas, weights, labels = [], [], [], [], [], []
        # One view per image, taken once: indexing the batch tensor per image makes autograd allocate
        # and zero a batch-sized gradient for every image (about 4 % of a CPU step at batch 8).
        protos, coefs = out.protos.float().unbind(0), out.coef.float().unbind(0)
        for b, (boxes, lab, masks) in enumerate(gts):
            sel = pos[b].nonzero().squeeze(1)
            if sel.numel() == 0 or masks.shape[0] == 0:
                continue
            n_pos = sel.numel()
            if n_pos > cfg.masks_to_train:
                sel = sel[torch.randperm(n_pos, device=sel.device)[: cfg.masks_to_train]]
            gt_idx = idx_t[b, sel]
            with torch.no_grad():
                small = F.interpolate(masks.unsqueeze(0), (H, W), mode="bilinear", align_corners=False)[0]
                small = small.gt(0.5).float()
            logits.append(torch.einsum("khw,nk->nhw", protos[b], coefs[b][sel]))
            targets.append(small[gt_idx])
            valid.append(box_mask(boxes[gt_idx], H, W))
            areas.append(box_area_pixels(boxes[gt_idx], H, W))
            weights.append(torch.full((sel.numel(),), n_pos / sel.numel(), device=sel.device))
            labels.append(lab[gt_idx])
        if not logits:
            zero = _attached(out.coef.new_zeros(()), out.coef) + 0.0 * out.protos.sum()
            return zero, zero * 0.0, {}
        x, g, v, w = torch.cat(logits), torch.cat(targets), torch.cat(valid), torch.cat(weights)
        per_instance, terms = loss_with_terms(self.mask_loss, x, g, v, area=torch.cat(areas))
        mask_sum = (w * per_instance).sum()
        term_sums = {label: (w * value.detach()).sum() for label, value in terms.items()}
        iou_sum = x.new_zeros(())
        if maskiou_net is not None:
            iou_sum = self._maskiou_term(maskiou_net, x, g, v, torch.cat(labels))
        return mask_sum, iou_sum, term_sums

    def _maskiou_term(self, net: nn.Module, logits: Tensor, gt: Tensor, crop: Tensor, labels: Tensor) -> Tensor:
        keep = gt.sum(dim=(1, 2)) > self.config.discard_mask_area
        if not keep.any():
            return 0.0 * sum(p.sum() for p in net.parameters())
        probs = torch.sigmoid(logits[keep]) * crop[keep]
        with torch.no_grad():
            binary = probs.gt(0.5).float()
            inter = (binary * gt[keep]).sum(dim=(1, 2))
            union = binary.sum(dim=(1, 2)) + gt[keep].sum(dim=(1, 2)) - inter
            iou_t = inter / union.clamp_min(1e-6)
        net_in = probs.detach() if self.config.maskiou_detach else probs
        pred = net(net_in.unsqueeze(1)).float()
        pred = pred.gather(1, (labels[keep] - 1).unsqueeze(1)).squeeze(1)
        return F.smooth_l1_loss(pred, iou_t, reduction="sum")

    @staticmethod
    def _semantic_term(segm: Tensor, gts: list) -> Tensor:
        B, C, H, W = segm.shape
        target = segm.new_zeros((B, C, H, W), dtype=torch.float32)
        with torch.no_grad():
            for b, (_, labels, masks) in enumerate(gts):
                if masks.shape[0] == 0:
                    continue
                small = F.interpolate(masks.unsqueeze(0), (H, W), mode="bilinear", align_corners=False)[0].gt(0.5)
                for c in labels.unique().tolist():  # the union of each present class's masks
                    target[b, c - 1] = small[labels == c].any(dim=0).float()
        return F.binary_cross_entropy_with_logits(segm.float(), target, reduction="sum") / (H * W)
