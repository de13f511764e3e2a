"""How much noise a ``label_noise`` level really is: the IoU between clean and corrupted masks, and a
picture of both (``losslab data noise``).

The IoU of an image is that of the union of its clean instance masks with the union of its
corrupted ones (crowd regions left out); the instance IoU compares each clean instance with its own
corrupted mask (0 when it was dropped). Both are measured at the dataset's original resolution,
the one the corruption is applied at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from losslab.data.coco import CocoInstances
from losslab.data.noise import LabelNoise

__all__ = ["NoiseMeasurement", "NoisyImage", "measure_label_noise", "noisy_images", "plot_label_noise"]


@dataclass
class NoisyImage:
    """One image with its clean and corrupted non-crowd masks.

    Shape:
        image: ``(H, W, 3)`` float32 RGB in [0, 255]; clean, noisy: ``(n, H, W)`` uint8 (a dropped
        instance's noisy mask is all zero); keep: ``(n,)`` bool.
    """

    image_id: int
    image: np.ndarray
    clean: np.ndarray
    noisy: np.ndarray
    keep: np.ndarray

    @property
    def iou(self) -> float:
        """IoU of the union of the clean masks with the union of the corrupted ones."""
        return _iou(self.clean.any(axis=0), self.noisy.any(axis=0))

    def instance_ious(self) -> list[float]:
        """Each clean instance's IoU with its corrupted mask."""
        return [_iou(c, n) for c, n in zip(self.clean, self.noisy, strict=True)]


@dataclass
class NoiseMeasurement:
    """The mean IoU of a noise level over a split's first images that hold an instance.

    Attributes:
        spec: the canonical ``label_noise`` spec; seed: its seed.
        images, instances: how many were measured.
        mean_iou: mean per-image IoU (see ``NoisyImage.iou``); mean_instance_iou: over instances.
        dropped, emptied: instances removed by ``drop`` / whose corrupted mask covered no pixel.
        per_image: ``(image_id, IoU)`` of each measured image, in dataset order.
        examples: the first measured images themselves, for ``plot_label_noise``.
    """

    spec: str
    seed: int
    images: int
    instances: int
    mean_iou: float
    mean_instance_iou: float
    dropped: int
    emptied: int
    per_image: list[tuple[int, float]] = field(default_factory=list)
    examples: list[NoisyImage] = field(default_factory=list, repr=False)

    def to_dict(self, per_image: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (no examples); ``per_image`` keeps the per-image list."""
        skip = {"examples"} if per_image else {"examples", "per_image"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def noisy_images(dataset: CocoInstances, noise: LabelNoise, n: int) -> Iterator[NoisyImage]:
    """The first ``n`` images of ``dataset`` that hold a non-crowd instance, clean and corrupted.

    Images are read untransformed (``load_sample``), which is what the training split corrupts.
    """
    found = 0
    for i in range(len(dataset)):
        if found >= n:
            return
        sample = dataset.load_sample(i)
        crowd = sample["iscrowd"]
        if not (~crowd).any():
            continue
        image_id = int(dataset.images[i]["id"])
        noisy, keep = noise.corrupt(sample["masks"], image_id, crowd)
        found += 1
        yield NoisyImage(image_id, sample["image"], sample["masks"][~crowd], noisy[~crowd], keep[~crowd])


def measure_label_noise(dataset: CocoInstances, noise: LabelNoise, n: int = 100, examples: int = 0) -> NoiseMeasurement:
    """The mean IoU between clean and corrupted masks over the first ``n`` annotated images.

    Args:
        dataset: the split to measure (read untransformed).
        noise: the noise level and its seed.
        n: how many images that hold an instance to measure.
        examples: how many of the first ones to keep in ``.examples`` (for the picture).

    Raises:
        ValueError: no image of ``dataset`` holds an instance.
    """
    before = (noise.counts.dropped, noise.counts.emptied)
    per_image, per_instance, kept = [], [], []
    for item in noisy_images(dataset, noise, n):
        per_image.append((item.image_id, item.iou))
        per_instance.extend(item.instance_ious())
        if len(kept) < examples:
            kept.append(item)
    if not per_image:
        raise ValueError(f"{dataset.ann_file}: no image holds an instance; nothing to measure")
    return NoiseMeasurement(
        spec=noise.spec,
        seed=noise.seed,
        images=len(per_image),
        instances=len(per_instance),
        mean_iou=float(np.mean([v for _, v in per_image])),
        mean_instance_iou=float(np.mean(per_instance)),
        dropped=noise.counts.dropped - before[0],
        emptied=noise.counts.emptied - before[1],
        per_image=per_image,
        examples=kept,
    )


def _crop(item: NoisyImage, margin: int) -> tuple[slice, slice]:
    """The box around every clean and corrupted mask, ``margin`` pixels wider (the outlines' detail)."""
    ys, xs = np.nonzero(np.concatenate([item.clean, item.noisy]).any(axis=0))
    h, w = item.image.shape[:2]
    if not len(ys):
        return slice(0, h), slice(0, w)
    return slice(max(ys.min() - margin, 0), min(ys.max() + margin + 1, h)), slice(
        max(xs.min() - margin, 0), min(xs.max() + margin + 1, w)
    )


def _panel(
    ax: Any, item: NoisyImage, masks: np.ndarray, color: str, box: tuple[slice, slice], ref: np.ndarray | None = None
) -> None:
    """Image crop, filled masks with their outlines, and ``ref`` (the clean masks) as dashed outlines."""
    from matplotlib.colors import to_rgba

    ax.imshow(item.image[box].astype(np.uint8), interpolation="nearest")
    fill = np.zeros((*item.image[box].shape[:2], 4), np.float32)
    fill[masks[(slice(None), *box)].any(axis=0)] = to_rgba(color, 0.35)
    ax.imshow(fill, interpolation="nearest")
    for m in masks:
        if m[box].any():
            ax.contour(m[box], levels=[0.5], colors=[color], linewidths=1.2)
    for m in ref if ref is not None else []:
        if m[box].any():
            ax.contour(m[box], levels=[0.5], colors=["white"], linewidths=0.8, linestyles="dashed")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_label_noise(items: list[NoisyImage], out: str | Path, title: str) -> Path:
    """Two rows of panels, clean masks above and corrupted ones below (the clean outline dashed),
    each image cropped to its objects; the column title gives the image's IoU. Writes a PNG and
    returns its path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if not items:
        raise ValueError("no image to draw")
    fig, axes = plt.subplots(2, len(items), figsize=(2.4 * len(items) + 0.6, 5.2), squeeze=False)
    for col, item in enumerate(items):
        box = _crop(item, margin=max(6, item.image.shape[0] // 16))
        # colours that butts, grass and gravel rarely have
        _panel(axes[0, col], item, item.clean, "deepskyblue", box)
        _panel(axes[1, col], item, item.noisy[item.keep], "magenta", box, ref=item.clean)
        lost = int((~item.keep).sum())
        note = f", {lost} of {len(item.keep)} lost" if lost else ""
        axes[0, col].set_title(f"image {item.image_id}\nIoU {item.iou:.3f}{note}", fontsize=9)
    axes[0, 0].set_ylabel("clean")
    axes[1, 0].set_ylabel("corrupted")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
