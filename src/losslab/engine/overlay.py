"""Sample-prediction pictures: masks, boxes, classes and scores drawn over the image with OpenCV.

Used by ``run_experiment`` (``save_samples``: ``run_dir/samples/<image_id>.png``, the report's grid
of sample predictions) and by ``losslab predict`` (``engine.inference``). Images travel as the
datasets give them: RGB, normalised with the ImageNet mean and std, letterboxed (resized by
``scale``, padded right and bottom); ``losslab.data.transforms`` owns all three steps and their
inverses, so the pictures cannot drift from what the model saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from losslab.data.transforms import denormalize, letterbox_extent
from losslab.engine.train import to_device

__all__ = [
    "SCORE_THRESHOLD",
    "draw_dense",
    "draw_instances",
    "render_prediction",
    "save_samples",
    "to_original",
    "to_picture",
    "write_png",
]

#: Detections scoring at least this are drawn in sample pictures (the report states it).
SCORE_THRESHOLD = 0.3

# distinct BGR colours, one per detection rank (a fixed palette keeps the report's grid comparable)
_PALETTE = [
    (75, 25, 230), (75, 180, 60), (25, 225, 255), (200, 130, 0), (48, 130, 245), (180, 30, 145),
    (240, 240, 70), (230, 50, 240), (60, 245, 210), (212, 190, 250), (128, 128, 0), (40, 110, 170),
]  # fmt: skip


def to_picture(image: torch.Tensor) -> np.ndarray:
    """A normalised RGB image tensor as an 8-bit BGR picture (``denormalize``, then OpenCV's order).

    Shape:
        image: ``(3, H, W)``; returns ``(H, W, 3)`` uint8.
    """
    rgb = denormalize(image.detach().float().cpu())
    return np.ascontiguousarray((rgb.permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8))


def to_original(picture: np.ndarray, orig_size: Sequence[int], scale: float) -> np.ndarray:
    """Crop the letterbox padding off ``picture`` and resize it back to ``orig_size`` ``(h, w)``."""
    nh, nw = letterbox_extent(orig_size, scale, picture.shape[:2])
    return cv2.resize(picture[:nh, :nw], (int(orig_size[1]), int(orig_size[0])), interpolation=cv2.INTER_LINEAR)


def draw_instances(
    picture: np.ndarray,
    pred: dict[str, torch.Tensor],
    class_names: Sequence[str] = (),
    score_threshold: float = SCORE_THRESHOLD,
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
        tx = min(max(x0, 0), max(0, out.shape[1] - tw - 2))  # the label stays inside the frame
        cv2.rectangle(out, (tx, ty - th - 2), (tx + tw + 2, ty), color, -1)
        cv2.putText(out, text, (tx + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
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


@torch.no_grad()
def render_prediction(
    model: nn.Module,
    image: torch.Tensor,
    *,
    orig_size: Sequence[int] | None = None,
    scale: float = 1.0,
    class_names: Sequence[str] = (),
    score_threshold: float = SCORE_THRESHOLD,
    target_mask: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """The model's prediction on one input image, drawn over it (the model must be in eval mode).

    Instance models get ``draw_instances``, dense models ``draw_dense`` (with the ground-truth
    outline when ``target_mask`` is given); with ``orig_size`` the picture is cropped and resized
    back to the original image.

    Shape:
        image: ``(3, S, S)`` normalised; returns ``(h, w, 3)`` uint8 BGR (``(S, S, 3)`` without
        ``orig_size``).
    """
    out = model(image[None].to(device))
    picture = to_picture(image)
    if isinstance(out, dict):  # dense task
        picture = draw_dense(picture, out["mask"][0], target_mask)
    else:
        picture = draw_instances(picture, to_device(out[0], torch.device("cpu")), class_names, score_threshold)
    return picture if orig_size is None else to_original(picture, orig_size, scale)


def save_samples(
    model: nn.Module, dataset: Dataset, out_dir: str | Path, n: int = 8, device: torch.device | str = "cpu"
) -> list[Path]:
    """PNG overlays of the model's predictions on the first ``n`` images of ``dataset``.

    Written as ``out_dir/<image_id>.png`` at the original image size (where the dataset gives
    ``orig_size`` and ``scale``), so every configuration of a study shows the same images.
    """
    names = list(getattr(dataset, "cat_names", []) or [])
    written = []
    was_training = model.training
    model.eval()
    try:
        for i in range(min(n, len(dataset))):
            image, target = dataset[i]
            original = "orig_size" in target and "scale" in target
            picture = render_prediction(
                model,
                image,
                orig_size=target["orig_size"] if original else None,
                scale=float(target["scale"]) if original else 1.0,
                class_names=names,
                target_mask=target.get("mask"),
                device=device,
            )
            written.append(write_png(Path(out_dir) / f"{int(target['image_id'])}.png", picture))
    finally:
        model.train(was_training)
    return written
