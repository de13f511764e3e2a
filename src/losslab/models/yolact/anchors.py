"""Anchor boxes for every FPN level, in YOLACT's order and convention.

For a level of ``h x w`` cells, the anchors of cell (row j, column i) are centred at
``((i + 0.5) / w, (j + 0.5) / h)``; for each scale ``s`` (pixels) and aspect ratio ``r`` the
anchor is ``s * sqrt(r)`` wide and ``s / sqrt(r)`` high (YOLACT's ``use_pixel_scales=True``,
``preapply_sqrt=False``), divided by the image size. YOLACT++ uses three scales per level,
``s * 2^(j/3)``. Anchors vary fastest, then columns, then rows, then levels, matching the
head's output order.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["level_scales", "make_anchors"]


def level_scales(base: float, scales_per_level: int, input_size: int, reference: int = 550) -> list[float]:
    """Anchor sides in pixels for one level: ``base`` (at a ``reference`` px input) scaled to
    ``input_size``, times ``2^(j / scales_per_level)`` for each extra scale."""
    s = base * input_size / reference
    return [s * 2.0 ** (j / scales_per_level) for j in range(scales_per_level)]


def make_anchors(
    feature_sizes: list[tuple[int, int]],
    image_size: tuple[int, int],
    scales: list[list[float]],
    aspect_ratios: tuple[float, ...],
    square: bool = False,
    device: torch.device | str | None = None,
) -> Tensor:
    """All anchors as ``(cx, cy, w, h)`` relative to the image.

    Args:
        feature_sizes: ``(h, w)`` of each level.
        image_size: ``(H, W)`` of the input in pixels.
        scales: per level, the anchor sides in pixels.
        aspect_ratios: width / height ratios.
        square: YOLACT v1's compatibility bug, ``h = w``.

    Shape:
        - output: ``(A, 4)`` with ``A = sum_l h_l * w_l * len(scales_l) * len(aspect_ratios)``.
    """
    H, W = image_size
    out = []
    for (h, w), level in zip(feature_sizes, scales, strict=True):
        # Per-location shapes in YOLACT's loop order: scale outer, aspect ratio inner.
        shapes = []
        for s in level:
            for r in aspect_ratios:
                aw = s * math.sqrt(r) / W
                ah = aw if square else s / math.sqrt(r) / H
                shapes.append((aw, ah))
        wh = torch.tensor(shapes, dtype=torch.float32, device=device)  # (a, 2)
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(shapes), 2)
        sizes = wh.unsqueeze(0).expand(h * w, -1, -1)
        out.append(torch.cat([centres, sizes], dim=-1).reshape(-1, 4))
    return torch.cat(out, dim=0)
