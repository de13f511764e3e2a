"""Model outputs (input pixels of a letterboxed image) as COCO result dicts on the original images.

The inverse of the data pipeline's letterbox: masks are cropped to the part of the input that holds
the image (``losslab.data.transforms.letterbox_extent``, the rounding the transforms use), resized to
the original size and RLE-encoded; boxes are divided by ``scale``, clipped and written as xywh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import torch
import torch.nn.functional as F

from losslab.data.transforms import letterbox_extent

__all__ = ["predictions_to_coco"]


def _boxes_to_xywh(boxes: torch.Tensor, scale: float, h: int, w: int) -> np.ndarray:
    """Input-pixel xyxy boxes ``(k, 4)`` -> original-image xywh ``(k, 4)``, clipped to the image."""
    xyxy = (boxes.detach().float().cpu() / scale).numpy()
    xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, w)
    xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, h)
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def _masks_to_rle(masks: torch.Tensor, h: int, w: int, h_in: int, w_in: int, threshold: float) -> list[dict]:
    """Crop the letterboxed region, resize to the original size, threshold and RLE-encode.

    Shape:
        masks ``(k, S, S)`` probabilities; one RLE per mask, of size ``(h, w)``.
    """
    rles: list[dict] = []
    # Chunks keep the float copy at the original resolution small (k x h x w floats).
    for chunk in masks.split(32):
        crop = chunk[:, None, :h_in, :w_in].float()
        full = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        binary = (full > threshold).to(torch.uint8).cpu().numpy()
        for r in mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))):
            r["counts"] = r["counts"].decode("ascii")  # json-serialisable, and what COCO results use
            rles.append(r)
    return rles


def predictions_to_coco(
    preds: Sequence[dict[str, torch.Tensor]],
    targets: Sequence[dict[str, Any]],
    label_to_cat: dict[int, int],
    mask_threshold: float = 0.5,
) -> list[dict]:
    """Model outputs in input pixels to COCO result dicts on the original images.

    The input is the original image resized by ``scale`` and padded at the right and bottom
    (letterbox). Masks are cropped to the valid ``orig_size x scale`` region, resized to
    ``orig_size`` (bilinear), thresholded (``> mask_threshold``) and RLE-encoded; boxes are
    divided by ``scale``, clipped to the image and written as xywh.

    Args:
        preds: per image ``boxes`` ``(k, 4)`` xyxy, ``scores`` ``(k,)``, ``labels`` ``(k,)`` in 1..C,
            ``masks`` ``(k, S, S)`` in [0, 1] (optional: without it, results have no segmentation).
        targets: per image ``image_id``, ``orig_size`` ``(h, w)``, ``scale``.
        label_to_cat: model label -> COCO category id.
        mask_threshold: probability above which a pixel belongs to the mask.

    Returns:
        One dict per detection: ``image_id``, ``category_id``, ``bbox``, ``score``[, ``segmentation``].
    """
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets: pass one of each per image")
    results: list[dict] = []
    for pred, target in zip(preds, targets, strict=True):
        for key in ("image_id", "orig_size", "scale"):
            if key not in target:
                raise ValueError(f"target lacks {key!r}: the dataset must give image_id, orig_size and scale")
        boxes, scores, labels = pred["boxes"], pred["scores"], pred["labels"]
        k = int(scores.shape[0])
        if k == 0:
            continue
        if boxes.shape != (k, 4) or labels.shape != (k,):
            raise ValueError(f"boxes {tuple(boxes.shape)} / labels {tuple(labels.shape)} must be ({k}, 4) / ({k},)")
        cats = []
        for label in labels.tolist():
            if int(label) not in label_to_cat:
                raise ValueError(f"label {label} is not in label_to_cat {label_to_cat}; labels run 1..C")
            cats.append(int(label_to_cat[int(label)]))
        h, w = int(target["orig_size"][0]), int(target["orig_size"][1])
        scale = float(target["scale"])
        xywh = _boxes_to_xywh(boxes, scale, h, w)
        masks = pred.get("masks")
        segms: list[dict | None] = [None] * k
        if masks is not None:
            if masks.dim() != 3 or masks.shape[0] != k:
                raise ValueError(f"masks have shape {tuple(masks.shape)}: expected ({k}, S, S)")
            h_in, w_in = letterbox_extent((h, w), scale, masks.shape[-2:])
            segms = list(_masks_to_rle(masks.detach(), h, w, h_in, w_in, mask_threshold))
        image_id = int(target["image_id"])
        for i, score in enumerate(scores.detach().float().cpu().tolist()):
            det = {"image_id": image_id, "category_id": cats[i], "bbox": xywh[i].tolist(), "score": score}
            if segms[i] is not None:
                det["segmentation"] = segms[i]
            results.append(det)
    return results
