"""Box encoding, IoU, anchor matching and box crops (YOLACT's ``layers/box_utils.py``).

Boxes are relative to the image (0..1). ``xyxy`` is point form, ``cxcywh`` centre-size form.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

__all__ = [
    "box_area_pixels",
    "box_mask",
    "center_size",
    "crowd_overlap",
    "decode",
    "encode",
    "match",
    "point_form",
    "sanitize_coordinates",
]


def point_form(boxes: Tensor) -> Tensor:
    """``(..., 4)`` cxcywh -> xyxy."""
    return torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], dim=-1)


def center_size(boxes: Tensor) -> Tensor:
    """``(..., 4)`` xyxy -> cxcywh."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def encode(matched: Tensor, anchors: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """SSD offsets of ground-truth boxes from their anchors.

    ``t_xy = (c_gt - c_a) / (v0 * wh_a)``, ``t_wh = log(wh_gt / wh_a) / v1``.

    Shape:
        - matched: ``(..., 4)`` xyxy; anchors: ``(..., 4)`` cxcywh; output ``(..., 4)``.
    """
    g = center_size(matched)
    t_xy = (g[..., :2] - anchors[..., :2]) / (variances[0] * anchors[..., 2:])
    # Degenerate (zero-size) boxes would give log(0); YOLACT's data pipeline drops them, we clamp.
    t_wh = torch.log(g[..., 2:].clamp_min(1e-6) / anchors[..., 2:]) / variances[1]
    return torch.cat([t_xy, t_wh], dim=-1)


def decode(loc: Tensor, anchors: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """Boxes (xyxy) from predicted offsets; the inverse of ``encode``.

    Shape:
        - loc: ``(..., A, 4)``; anchors: ``(A, 4)`` cxcywh; output ``(..., A, 4)`` xyxy.
    """
    cxcy = anchors[..., :2] + loc[..., :2] * variances[0] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp(loc[..., 2:] * variances[1])
    return point_form(torch.cat([cxcy, wh], dim=-1))


def crowd_overlap(anchors_xyxy: Tensor, crowd_xyxy: Tensor) -> Tensor:
    """Fraction of each anchor covered by each crowd box (YOLACT's ``jaccard(..., iscrowd=True)``:
    intersection over the anchor's area, not over the union).

    Shape:
        - anchors_xyxy: ``(A, 4)``; crowd_xyxy: ``(m, 4)``; output ``(A, m)``.
    """
    lt = torch.max(anchors_xyxy[:, None, :2], crowd_xyxy[None, :, :2])
    rb = torch.min(anchors_xyxy[:, None, 2:], crowd_xyxy[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(dim=-1)
    area = (anchors_xyxy[:, 2:] - anchors_xyxy[:, :2]).prod(dim=-1).clamp_min(1e-12)
    return inter / area[:, None]


def match(
    gt_boxes: Tensor,
    gt_labels: Tensor,
    anchors: Tensor,
    crowd_boxes: Tensor | None = None,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
    crowd_iou: float = 0.7,
    variances: tuple[float, float] = (0.1, 0.2),
) -> tuple[Tensor, Tensor, Tensor]:
    """Match anchors to ground truths as YOLACT does.

    Each anchor takes the ground truth it overlaps most. Every ground truth also claims its best
    anchor (greedily, best pair first, as YOLACT's loop does), even below ``pos_iou``. Anchors
    with best IoU ``>= pos_iou`` are positive, ``< neg_iou`` background, in between neutral
    (-1); a background anchor covered by a crowd box by more than ``crowd_iou`` becomes neutral.

    Args:
        gt_boxes: ``(n, 4)`` xyxy relative boxes (crowd boxes excluded).
        gt_labels: ``(n,)`` labels in 1..C.
        anchors: ``(A, 4)`` cxcywh.
        crowd_boxes: ``(m, 4)`` xyxy crowd regions or ``None``.

    Returns:
        ``conf_t (A,)`` int64 (-1 neutral, 0 background, 1..C), ``idx_t (A,)`` the matched
        ground-truth index (0 where there is none), ``loc_t (A, 4)`` encoded offsets.
    """
    A = anchors.shape[0]
    anchors_xyxy = point_form(anchors)
    conf_t = torch.zeros(A, dtype=torch.long, device=anchors.device)
    idx_t = torch.zeros(A, dtype=torch.long, device=anchors.device)
    loc_t = torch.zeros(A, 4, dtype=anchors.dtype, device=anchors.device)
    if gt_boxes.shape[0] > 0:
        overlaps = box_iou(gt_boxes.to(anchors.dtype), anchors_xyxy)  # (n, A)
        best_truth_overlap, best_truth_idx = overlaps.max(dim=0)
        work = overlaps.clone()
        for _ in range(gt_boxes.shape[0]):
            best_prior_overlap, best_prior_idx = work.max(dim=1)
            j = int(best_prior_overlap.argmax())
            i = int(best_prior_idx[j])
            work[:, i] = -1
            work[j, :] = -1
            best_truth_overlap[i] = 2.0
            best_truth_idx[i] = j
        idx_t = best_truth_idx
        conf_t = gt_labels.to(torch.long)[best_truth_idx]
        conf_t[best_truth_overlap < pos_iou] = -1
        conf_t[best_truth_overlap < neg_iou] = 0
        loc_t = encode(gt_boxes.to(anchors.dtype)[best_truth_idx], anchors, variances)
    if crowd_boxes is not None and crowd_boxes.shape[0] > 0 and crowd_iou < 1:
        covered = crowd_overlap(anchors_xyxy, crowd_boxes.to(anchors.dtype)).max(dim=1).values
        conf_t[(conf_t <= 0) & (covered > crowd_iou)] = -1
    return conf_t, idx_t, loc_t


def sanitize_coordinates(x1: Tensor, x2: Tensor, size: int, padding: int = 1) -> tuple[Tensor, Tensor]:
    """Relative coordinates to ordered pixel coordinates, ``padding`` wider, inside ``[0, size]``."""
    a, b = x1 * size, x2 * size
    lo = torch.minimum(a, b) - padding
    hi = torch.maximum(a, b) + padding
    return lo.clamp(min=0), hi.clamp(max=size)


def box_mask(boxes: Tensor, height: int, width: int, padding: int = 1) -> Tensor:
    """A 0/1 mask of each box's pixels (YOLACT's ``crop``), without a Python loop.

    Shape:
        - boxes: ``(n, 4)`` relative xyxy; output ``(n, height, width)`` float.
    """
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height, padding)
    cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype).view(1, 1, -1)
    rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype).view(1, -1, 1)
    inside_x = (cols >= x1.view(-1, 1, 1)) & (cols < x2.view(-1, 1, 1))
    inside_y = (rows >= y1.view(-1, 1, 1)) & (rows < y2.view(-1, 1, 1))
    return (inside_x & inside_y).to(boxes.dtype)


def box_area_pixels(boxes: Tensor, height: int, width: int) -> Tensor:
    """Each box's area in pixels of a ``height x width`` grid (YOLACT's ``w * h`` of the
    ground-truth box in prototype pixels: no padding, not rounded).

    Shape:
        - boxes: ``(n, 4)`` relative xyxy; output ``(n,)``.
    """
    return (boxes[:, 2] - boxes[:, 0]) * width * ((boxes[:, 3] - boxes[:, 1]) * height)
