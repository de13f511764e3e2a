"""Joint transforms on an image, its instance masks and boxes (SSD / YOLACT style augmentation).

A sample is a dict of numpy arrays: ``image`` float32 ``(H, W, 3)`` RGB in [0, 255], ``masks``
uint8 ``(n, H, W)``, ``labels`` int64 ``(n,)``, ``iscrowd`` bool ``(n,)``, ``boxes`` float32
``(n, 4)`` xyxy, plus ``scale``. Masks are the truth: after every geometric transform the boxes
are recomputed as the masks' tight boxes (``x2 = last column + 1``, the COCO convention) and
instances whose mask became empty are dropped from every array at once. Each transform takes
the sample and a ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch

__all__ = [
    "MEAN",
    "STD",
    "Compose",
    "Expand",
    "Letterbox",
    "PhotometricDistort",
    "RandomFlip",
    "RandomSampleCrop",
    "ToTensor",
    "build_transforms",
    "denormalize",
    "letterbox_array",
    "letterbox_extent",
    "letterbox_image",
    "masks_to_boxes",
    "normalize",
]

MEAN = (0.485, 0.456, 0.406)  # ImageNet, RGB
STD = (0.229, 0.224, 0.225)
_FILL = np.array(MEAN, np.float32) * 255  # pads become 0 after normalisation

Sample = dict
Transform = Callable[[Sample, np.random.Generator], Sample]


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes of masks, ``x2``/``y2`` one past the last pixel; zeros for empty masks.

    Shape:
        ``masks`` ``(n, H, W)`` -> ``(n, 4)`` float32.
    """
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        cols = np.flatnonzero(m.any(axis=0))
        rows = np.flatnonzero(m.any(axis=1))
        if cols.size:
            boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def sync_boxes(sample: Sample) -> Sample:
    """Recompute boxes from masks and drop instances with an empty mask, in every array."""
    masks = sample["masks"]
    keep = masks.reshape(len(masks), -1).any(axis=1) if len(masks) else np.zeros(0, bool)
    for key in ("masks", "labels", "iscrowd"):
        sample[key] = sample[key][keep]
    sample["boxes"] = masks_to_boxes(sample["masks"])
    return sample


def _resize_masks(masks: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize binary masks by area (linear) and threshold at one half: thin parts survive better."""
    out = np.zeros((len(masks), h, w), np.uint8)
    for i, m in enumerate(masks):
        out[i] = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
    return out


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __repr__(self) -> str:
        return f"Compose({[type(t).__name__ for t in self.transforms]})"


class PhotometricDistort:
    """SSD photometric distortion: brightness, contrast (before or after), saturation, hue."""

    def __init__(
        self, brightness: float = 32, contrast: tuple = (0.5, 1.5), saturation: tuple = (0.5, 1.5), hue: float = 18
    ):
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        img = sample["image"]
        if rng.random() < 0.5:
            img = img + rng.uniform(-self.brightness, self.brightness)
        contrast_first = rng.random() < 0.5
        if contrast_first and rng.random() < 0.5:
            img = img * rng.uniform(*self.contrast)
        hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
        if rng.random() < 0.5:
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*self.saturation), 0, 1)
        if rng.random() < 0.5:
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-self.hue, self.hue)) % 360
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255
        if not contrast_first and rng.random() < 0.5:
            img = img * rng.uniform(*self.contrast)
        sample["image"] = np.clip(img, 0, 255).astype(np.float32)
        return sample


class Expand:
    """Zoom out: place the image at a random spot of a canvas up to ``max_ratio`` times larger."""

    def __init__(self, max_ratio: float = 4.0, p: float = 0.5):
        self.max_ratio, self.p = max_ratio, p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        h, w = sample["image"].shape[:2]
        r = rng.uniform(1, self.max_ratio)
        H, W = int(h * r), int(w * r)
        top, left = int(rng.uniform(0, H - h)), int(rng.uniform(0, W - w))
        img = np.empty((H, W, 3), np.float32)
        img[:] = _FILL
        img[top : top + h, left : left + w] = sample["image"]
        masks = np.zeros((len(sample["masks"]), H, W), np.uint8)
        masks[:, top : top + h, left : left + w] = sample["masks"]
        sample["image"], sample["masks"] = img, masks
        return sync_boxes(sample)


def _iou(boxes: np.ndarray, rect: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, :2], rect[:2])
    rb = np.minimum(boxes[:, 2:], rect[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) + np.prod(rect[2:] - rect[:2]) - inter
    return inter / np.maximum(area, 1e-9)


class RandomSampleCrop:
    """SSD random crop: a patch whose IoU with the objects is at least a randomly chosen minimum.

    Non-crowd instances whose box centre falls outside the patch are dropped (YOLACT's rule);
    crowd regions are kept while any of their pixels remain.
    """

    OPTIONS = (None, 0.1, 0.3, 0.7, 0.9, -1.0)  # None: keep the whole image; -1: any patch

    def __init__(self, min_scale: float = 0.3, tries: int = 50):
        self.min_scale, self.tries = min_scale, tries

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample["image"].shape[:2]
        solid = ~sample["iscrowd"]
        boxes = sample["boxes"][solid]
        for _ in range(20):
            min_iou = self.OPTIONS[rng.integers(len(self.OPTIONS))]
            if min_iou is None:
                return sample
            for _ in range(self.tries):
                cw, ch = rng.uniform(self.min_scale * w, w), rng.uniform(self.min_scale * h, h)
                if not 0.5 <= ch / cw <= 2:
                    continue
                left, top = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
                rect = np.array([int(left), int(top), int(left + cw), int(top + ch)], np.float32)
                if len(boxes) and _iou(boxes, rect).max() < min_iou:
                    continue
                centres = (sample["boxes"][:, :2] + sample["boxes"][:, 2:]) / 2
                inside = np.all((centres > rect[:2]) & (centres < rect[2:]), axis=1)
                if len(boxes) and not inside[solid].any():
                    continue
                keep = inside | sample["iscrowd"]
                x0, y0, x1, y1 = (int(v) for v in rect)
                sample["image"] = np.ascontiguousarray(sample["image"][y0:y1, x0:x1])
                for key in ("masks", "labels", "iscrowd"):
                    sample[key] = sample[key][keep]
                sample["masks"] = np.ascontiguousarray(sample["masks"][:, y0:y1, x0:x1])
                return sync_boxes(sample)
        return sample


class RandomFlip:
    """Horizontal mirror with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() < self.p:
            sample["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
            sample["masks"] = np.ascontiguousarray(sample["masks"][:, :, ::-1])
            sample = sync_boxes(sample)
        return sample


def letterbox_extent(orig_size: Sequence[int], scale: float, canvas: Sequence[int] | None = None) -> tuple[int, int]:
    """``(h_in, w_in)``: the part of a letterboxed input that holds the image (the rest is padding).

    The one rounding of the resized size that training, evaluation and prediction share: an
    ``(h, w)`` image resized by ``scale`` covers ``max(1, round(h * scale))`` rows, clipped to the
    ``canvas`` ``(H, W)`` when given.
    """
    h_in, w_in = max(1, round(int(orig_size[0]) * scale)), max(1, round(int(orig_size[1]) * scale))
    if canvas is not None:
        h_in, w_in = min(h_in, int(canvas[0])), min(w_in, int(canvas[1]))
    return h_in, w_in


def letterbox_array(
    arr: np.ndarray, size: int, interp: int, fill: float | np.ndarray = 0.0
) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect so the long side is ``size``, pad right and bottom with ``fill``.

    Shape:
        ``(H, W)`` or ``(H, W, C)`` -> ``(size, size)`` or ``(size, size, C)``; also returns the scale.
    """
    h, w = arr.shape[:2]
    scale = size / max(h, w)
    nh, nw = letterbox_extent((h, w), scale)
    out = np.empty((size, size, *arr.shape[2:]), arr.dtype)
    out[:] = fill
    out[:nh, :nw] = cv2.resize(arr, (nw, nh), interpolation=interp).reshape(nh, nw, *arr.shape[2:])
    return out, scale


def letterbox_image(image: np.ndarray, size: int) -> tuple[torch.Tensor, float]:
    """An RGB image in [0, 255] as the model sees it: letterboxed to ``size`` (padding that
    normalises to 0), ImageNet-normalised; and the scale. What evaluation and prediction feed.

    Shape:
        ``(H, W, 3)`` float -> ``(3, size, size)`` float32 tensor.
    """
    boxed, scale = letterbox_array(np.ascontiguousarray(image, dtype=np.float32), size, cv2.INTER_LINEAR, _FILL)
    return normalize(boxed), scale


class Letterbox:
    """Resize to the model's square input keeping the aspect; pad right and bottom."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample["image"].shape[:2]
        sample["image"], scale = letterbox_array(sample["image"], self.size, cv2.INTER_LINEAR, _FILL)
        nh, nw = letterbox_extent((h, w), scale)
        masks = np.zeros((len(sample["masks"]), self.size, self.size), np.uint8)
        masks[:, :nh, :nw] = _resize_masks(sample["masks"], nw, nh)
        sample["masks"] = masks
        sample["scale"] = float(scale)
        return sync_boxes(sample)


def normalize(image: np.ndarray) -> torch.Tensor:
    """An RGB image in [0, 255] as the model's input: ImageNet mean/std normalised, channels first.

    Shape:
        ``(H, W, 3)`` float -> ``(3, H, W)`` float32 tensor.
    """
    img = (image / 255.0 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


class ToTensor:
    """Normalise with ImageNet mean/std and convert every array to a torch tensor."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample["image"] = normalize(sample["image"])
        sample["masks"] = torch.from_numpy(np.ascontiguousarray(sample["masks"], dtype=np.uint8))
        sample["boxes"] = torch.from_numpy(np.asarray(sample["boxes"], np.float32).reshape(-1, 4))
        sample["labels"] = torch.from_numpy(np.asarray(sample["labels"], np.int64))
        sample["iscrowd"] = torch.from_numpy(np.asarray(sample["iscrowd"], bool))
        return sample


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: a ``(3, H, W)`` or ``(B, 3, H, W)`` tensor back to [0, 1] RGB."""
    mean = torch.tensor(MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)


def build_transforms(
    size: int,
    train: bool,
    photometric: bool = True,
    expand: bool = True,
    crop: bool = True,
    flip: bool = True,
) -> Compose:
    """The standard pipeline: for training photometric -> expand -> crop -> flip, then for both
    letterbox -> normalise. Evaluation uses only the last two, so predictions map back with
    ``scale``."""
    steps: list[Transform] = []
    if train:
        steps += [PhotometricDistort()] if photometric else []
        steps += [Expand()] if expand else []
        steps += [RandomSampleCrop()] if crop else []
        steps += [RandomFlip()] if flip else []
    steps += [Letterbox(size), ToTensor()]
    return Compose(steps)
