"""Sample-prediction pictures: masks, boxes, classes and scores drawn over the image with OpenCV.

Used by ``run_experiment`` (``run_dir/samples/<image_id>.png``, the report's grid of sample
predictions) and by ``losslab predict``. Images travel as the datasets give them: RGB, normalised
with the ImageNet mean and std, letterboxed (resized by ``scale``, padded right and bottom).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "denormalize",
    "draw_dense",
    "draw_instances",
    "letterbox",
    "to_original",
    "write_png",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# distinct BGR colours, one per detection rank (a fixed palette keeps the report's grid comparable)
_PALETTE = [
    (75, 25, 230), (75, 180, 60), (25, 225, 255), (200, 130, 0), (48, 130, 245), (180, 30, 145),
    (240, 240, 70), (230, 50, 240), (60, 245, 210), (212, 190, 250), (128, 128, 0), (40, 110, 170),
]  # fmt: skip


def denormalize(image: torch.Tensor) -> np.ndarray:
    """A normalised RGB image tensor back to an 8-bit BGR picture.

    Shape:
        image: ``(3, H, W)``; returns ``(H, W, 3)`` uint8.
    """
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (image.detach().float().cpu() * std + mean).clamp(0, 1)
    return np.ascontiguousarray((rgb.permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8))


def letterbox(bgr: np.ndarray, size: int) -> tuple[torch.Tensor, float]:
    """An 8-bit BGR image as the model input: resized so its long side is ``size``, padded right and
    bottom with zeros (after normalisation), RGB, ImageNet-normalised. Returns the tensor and scale.

    Shape:
        bgr: ``(h, w, 3)``; returns ``(3, size, size)``.
    """
    h, w = bgr.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    rgb = torch.from_numpy(np.ascontiguousarray(resized[..., ::-1])).permute(2, 0, 1).float() / 255
    norm = (rgb - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    out = torch.zeros(3, size, size)
    out[:, :nh, :nw] = norm
    return out, scale


def to_original(picture: np.ndarray, orig_size: Sequence[int], scale: float) -> np.ndarray:
    """Crop the letterbox padding off ``picture`` and resize it back to ``orig_size`` ``(h, w)``."""
    h, w = int(orig_size[0]), int(orig_size[1])
    nh = min(picture.shape[0], max(1, round(h * scale)))
    nw = min(picture.shape[1], max(1, round(w * scale)))
    return cv2.resize(picture[:nh, :nw], (w, h), interpolation=cv2.INTER_LINEAR)


def draw_instances(
    picture: np.ndarray,
    pred: dict[str, torch.Tensor],
    class_names: Sequence[str] = (),
    score_threshold: float = 0.3,
    max_shown: int = 12,
) -> np.ndarray:
    """Draw each detection above ``score_threshold``: a translucent mask, its box and "class score".

    Args:
        picture: ``(H, W, 3)`` uint8 BGR at the model's input size.
        pred: ``boxes`` ``(k, 4)`` xyxy, ``scores`` ``(k,)``, ``labels`` ``(k,)`` in 1..C,
            optional ``masks`` ``(k, H, W)`` in [0, 1].
        class_names: name of label ``i`` at ``class_names[i - 1]``.
    """
    out = picture.copy()
    scores = pred["scores"].detach().float().cpu()
    order = [int(i) for i in scores.argsort(descending=True) if scores[i] >= score_threshold][:max_shown]
    masks = pred.get("masks")
    for rank, i in enumerate(order):
        color = _PALETTE[rank % len(_PALETTE)]
        if masks is not None:
            m = masks[i].detach().float().cpu().numpy() > 0.5
            out[m] = (0.5 * out[m] + 0.5 * np.array(color)).astype(np.uint8)
    for rank, i in enumerate(order):
        color = _PALETTE[rank % len(_PALETTE)]
        x0, y0, x1, y1 = (round(float(v)) for v in pred["boxes"][i])
        cv2.rectangle(out, (x0, y0), (x1, y1), color, 1)
        label = int(pred["labels"][i])
        name = class_names[label - 1] if 0 < label <= len(class_names) else str(label)
        text = f"{name} {float(scores[i]):.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
        ty = max(y0, th + 2)
        cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 2, ty), color, -1)
        cv2.putText(out, text, (x0 + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def draw_dense(picture: np.ndarray, logits: torch.Tensor, target: torch.Tensor | None = None) -> np.ndarray:
    """The predicted mask (``sigmoid(logits) > 0.5``) in colour, the ground truth's outline in white.

    Shape:
        picture: ``(H, W, 3)``; logits and target: ``(1, H, W)`` or ``(H, W)``.
    """
    out = picture.copy()
    pred = torch.sigmoid(logits.detach().float().cpu()).reshape(picture.shape[:2]).numpy() > 0.5
    out[pred] = (0.5 * out[pred] + 0.5 * np.array(_PALETTE[0])).astype(np.uint8)
    if target is not None:
        gt = (target.detach().float().cpu().reshape(picture.shape[:2]).numpy() > 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(gt, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def write_png(path: str | Path, picture: np.ndarray) -> Path:
    """Write ``picture`` (BGR) as a PNG, creating the folder; raises ``ValueError`` if OpenCV fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture):
        raise ValueError(f"could not write {path} (OpenCV refused it: check the folder and the extension)")
    return path
