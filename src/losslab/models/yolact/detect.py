"""Inference: decode boxes, Fast NMS (or standard NMS), assemble and crop the masks.

YOLACT's ``Detect`` and ``postprocess`` (``layers/functions/detection.py``,
``layers/output_utils.py``): softmax class scores; keep anchors whose best foreground score
exceeds ``conf_thresh``; per class, the ``top_k`` best go through NMS; the ``max_detections``
best survivors across classes are kept; masks are ``sigmoid(protos @ coef)`` cropped by the
predicted box at prototype resolution, then upsampled bilinearly to the input size.

Fast NMS (YOLACT, Sec. 3.4) sorts each class's candidates, computes their pairwise IoU matrix,
keeps its upper triangle and removes a box if *any* higher-scoring box overlaps it more than the
threshold, even one that is itself removed. Standard NMS only lets kept boxes suppress. The two
agree whenever no suppressed box would have suppressed another box (no chains), e.g. when every
cluster of overlapping boxes has one member above the threshold with all the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms

from losslab.models.yolact.box_utils import box_mask, decode

__all__ = ["assemble_masks", "crop_masks", "detect", "fast_nms", "standard_nms", "upsample"]


def fast_nms(
    boxes: Tensor, scores: Tensor, iou_thresh: float = 0.5, top_k: int = 200, second_threshold: float | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """YOLACT's Fast NMS over all classes at once, with matrix operations only.

    Args:
        boxes: ``(n, 4)`` xyxy candidates (shared by the classes).
        scores: ``(C, n)`` per-class scores of the candidates.
        iou_thresh: suppress a box overlapping a better box of its class more than this.
        top_k: candidates per class considered.
        second_threshold: also drop survivors scoring at most this (YOLACT leaves it off).

    Returns:
        ``(keep_idx (m,), classes (m,), scores (m,))``: candidate indices, class index 0..C-1 and
        score of each survivor, best first.
    """
    C, n = scores.shape
    if n == 0:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return empty, empty, scores.new_zeros(0)
    k = min(top_k, n)
    s, idx = scores.topk(k, dim=1)  # (C, k), sorted
    b = boxes[idx]  # (C, k, 4)
    iou = _batched_iou(b).triu_(diagonal=1)
    keep = iou.amax(dim=1) <= iou_thresh
    if second_threshold is not None:
        keep &= s > second_threshold
    classes = torch.arange(C, device=boxes.device)[:, None].expand_as(keep)
    order = s[keep].argsort(descending=True)
    return idx[keep][order], classes[keep][order], s[keep][order]


def _batched_iou(b: Tensor) -> Tensor:
    """Pairwise IoU within each batch: ``(C, k, 4) -> (C, k, k)``."""
    lt = torch.max(b[:, :, None, :2], b[:, None, :, :2])
    rb = torch.min(b[:, :, None, 2:], b[:, None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    area = (b[..., 2:] - b[..., :2]).clamp_min(0).prod(-1)
    return inter / (area[:, :, None] + area[:, None, :] - inter).clamp_min(1e-12)


def standard_nms(
    boxes: Tensor, scores: Tensor, iou_thresh: float = 0.5, top_k: int = 200, conf_thresh: float = 0.05
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class greedy NMS (torchvision's ``batched_nms``) on each class's ``top_k`` candidates
    scoring above ``conf_thresh`` (YOLACT's ``traditional_nms``). Same returns as ``fast_nms``."""
    C, n = scores.shape
    k = min(top_k, n)
    s, idx = scores.topk(k, dim=1)
    classes = torch.arange(C, device=boxes.device)[:, None].expand_as(idx)
    ok = s > conf_thresh
    s, idx, classes = s[ok], idx[ok], classes[ok]
    kept = batched_nms(boxes[idx].float(), s.float(), classes, iou_thresh)  # sorted by score
    return idx[kept], classes[kept], s[kept]


def crop_masks(protos: Tensor, coef: Tensor, boxes: Tensor) -> Tensor:
    """``sigmoid(protos @ coef)`` cropped by ``boxes``, at prototype resolution.

    Shape:
        - protos ``(k, Hp, Wp)``, coef ``(n, k)``, boxes ``(n, 4)`` relative xyxy; output ``(n, Hp, Wp)``.
    """
    k, Hp, Wp = protos.shape
    masks = torch.sigmoid((coef.float() @ protos.float().reshape(k, -1)).reshape(-1, Hp, Wp))
    return masks * box_mask(boxes.float(), Hp, Wp)


def assemble_masks(protos: Tensor, coef: Tensor, boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """``crop_masks`` upsampled bilinearly to ``out_size``.

    Shape:
        - protos ``(k, Hp, Wp)``, coef ``(n, k)``, boxes ``(n, 4)`` relative xyxy.
        - output ``(n, *out_size)`` in [0, 1].
    """
    if coef.shape[0] == 0:
        return protos.new_zeros((0, *out_size), dtype=torch.float32)
    return upsample(crop_masks(protos, coef, boxes), out_size)


def upsample(masks: Tensor, out_size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling (``align_corners=False``) of ``(n, h, w)`` masks in [0, 1] to
    ``(n, *out_size)``, in [0, 1].

    Where ``out_size`` is a whole multiple of ``(h, w)`` (YOLACT's prototypes are a quarter of the
    input: 64 px for 256) the two axes are interpolated one after the other with ``torch.lerp``
    (``_upsample_whole``): the same numbers as ``F.interpolate`` to float32 rounding, 1.7x faster on
    the CPU, and never outside the inputs' range. Other sizes go through ``F.interpolate``, clamped
    to [0, 1] (its four-term sum can step past 1 by an ulp).
    """
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *out_size))
    (h, w), (H, W) = masks.shape[-2:], out_size
    if H % h == 0 and W % w == 0:
        return _upsample_whole(_upsample_whole(masks, 2, W // w), 1, H // h)
    return F.interpolate(masks.unsqueeze(0), out_size, mode="bilinear", align_corners=False)[0].clamp_(0, 1)


def _upsample_whole(x: Tensor, dim: int, factor: int) -> Tensor:
    """Linear upsampling of ``x`` by a whole ``factor`` along ``dim``, as ``F.interpolate`` with
    ``align_corners=False``.

    Output ``i = factor * j + p`` samples the input at ``j + d_p`` with ``d_p = (p + 0.5) / factor
    - 0.5`` in (-0.5, 0.5): between inputs ``j - 1`` and ``j`` when ``d_p < 0``, ``j`` and ``j + 1``
    otherwise, at the same weight for every ``j``. With the edge rows repeated (``interpolate``
    clamps the coordinate at the borders) each phase ``p`` is one ``lerp`` of two shifted views,
    written into every ``factor``-th row of the output. A lerp lies between its two ends, so the
    output stays in the input's range.

    Shape:
        - x ``(..., n, ...)`` with ``n`` along ``dim``; output the same with ``factor * n`` there.
    """
    if factor == 1:
        return x
    n = x.shape[dim]
    padded = torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1)], dim=dim)
    shape = list(x.shape)
    shape[dim] = n * factor
    out = x.new_empty(shape)
    phases = out.unflatten(dim, (n, factor))
    for p in range(factor):
        d = (p + 0.5) / factor - 0.5
        start, weight = (0, 1.0 + d) if d < 0 else (1, d)
        lo, hi = padded.narrow(dim, start, n), padded.narrow(dim, start + 1, n)
        torch.lerp(lo, hi, weight, out=phases.select(dim + 1, p))
    return out


@torch.no_grad()
def detect(
    loc: Tensor,
    conf: Tensor,
    coef: Tensor,
    protos: Tensor,
    anchors: Tensor,
    image_size: tuple[int, int],
    *,
    conf_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    top_k: int = 200,
    max_detections: int = 100,
    use_fast_nms: bool = True,
    variances: tuple[float, float] = (0.1, 0.2),
    maskiou_net: torch.nn.Module | None = None,
) -> list[dict[str, Tensor]]:
    """Detections per image, per the models contract.

    Shape:
        - loc ``(B, A, 4)``, conf ``(B, A, C + 1)`` logits, coef ``(B, A, k)``,
          protos ``(B, k, Hp, Wp)``, anchors ``(A, 4)`` cxcywh.
        - output per image: ``boxes (m, 4)`` xyxy input pixels, ``scores (m,)``, ``labels (m,)``
          in 1..C, ``masks (m, H, W)`` float in [0, 1]; with ``maskiou_net``, ``scores`` are the
          re-scored mask scores and ``box_scores`` the class scores.
    """
    H, W = image_size
    scale = loc.new_tensor([W, H, W, H], dtype=torch.float32)
    probs = torch.softmax(conf.float(), dim=-1)[..., 1:]  # (B, A, C)
    boxes_all = decode(loc.float(), anchors.float(), variances)
    results = []
    for b in range(loc.shape[0]):
        cand = (probs[b].amax(dim=1) > conf_thresh).nonzero().squeeze(1)
        boxes, scores = boxes_all[b, cand], probs[b, cand].t()
        nms = fast_nms if use_fast_nms else standard_nms
        extra = {} if use_fast_nms else {"conf_thresh": conf_thresh}
        keep, classes, kept_scores = nms(boxes, scores, nms_thresh, top_k, **extra)
        keep, classes, kept_scores = keep[:max_detections], classes[:max_detections], kept_scores[:max_detections]
        det_boxes = boxes[keep]
        det = {"labels": classes + 1, "scores": kept_scores}
        small = crop_masks(protos[b], coef[b, cand[keep]], det_boxes)
        if maskiou_net is not None and keep.numel():
            iou = maskiou_net(small.unsqueeze(1)).float().gather(1, classes.unsqueeze(1)).squeeze(1)
            det["box_scores"] = kept_scores
            det["scores"] = kept_scores * iou
        det["boxes"] = (det_boxes * scale).clamp_(min=0).minimum(scale)
        det["masks"] = upsample(small, (H, W))
        results.append(det)
    return results
