"""The report's grid of sample predictions (the paper's Fig. 3), with the ground truth on top.

Rows: the ground truth of each validation image (drawn here from the val split, loaded through
``losslab.data`` as the run folder's ``config.yaml`` names it: ``val_json`` / ``val_images``, a ``data``
folder, or the synthetic dataset of its ``synth_*`` keys), then one row per
configuration: its run's ``samples/<image_id>.png`` as the trainer drew it (detections at or above
the overlay's score threshold). Columns: the same validation images for every row, those holding an
object first, each headed by its image id and object count. Labels sit inside the picture (a label
column on the left), and the grid is a JPEG: about 0.4 MB for the quick study's ten rows of four
images, where its RGBA PNG was 4.25 MB.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = [
    "GroundTruth",
    "SampleGrid",
    "draw_ground_truth",
    "load_ground_truth",
    "make_sample_grid",
    "plot_sample_grid",
    "score_threshold",
]

#: Ground-truth fill (RGB) and the share of it mixed into the image.
GT_COLOR = (40, 200, 60)
GT_ALPHA = 0.45
#: Inches per grid cell; the grid is saved at ``DPI``.
CELL_INCHES = 1.7
DPI = 100
JPEG_QUALITY = 85


@dataclass(frozen=True)
class GroundTruth:
    """The val split's pictures with their ground truth drawn, by image id, and objects per image."""

    pictures: dict[int, np.ndarray]
    objects: dict[int, int]


@dataclass(frozen=True)
class SampleGrid:
    """What the grid shows, for its caption."""

    path: Path
    image_ids: list[int]
    seed: int | None
    threshold: float | None
    task: str
    ground_truth: bool
    note: str = ""


def score_threshold() -> float | None:
    """The score at or above which the trainer's overlays draw a detection."""
    try:
        from losslab.engine.overlay import SCORE_THRESHOLD
    except ImportError:
        return None
    return float(SCORE_THRESHOLD)


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    conf = yaml.safe_load(path.read_text()) or {}
    if not isinstance(conf, dict):
        raise ValueError(f"{path} is not a mapping")
    return {**conf.get("model", {}), **conf.get("train", {})} if "train" in conf else conf


def _dataset_root(train: Mapping[str, Any], task: str) -> Path:
    from losslab.engine.config import TrainConfig

    defaults = TrainConfig()
    data = str(train.get("data", defaults.data))
    if data != "synthetic":
        return Path(data)
    from losslab.data import ensure_synthetic

    args = {k: train.get(f"synth_{k}", getattr(defaults, f"synth_{k}")) for k in ("train", "val", "size", "seed")}
    return Path(ensure_synthetic(train.get("cache_dir") or None, task=task, progress=False, **args))


def _val_split(train: Mapping[str, Any]) -> Any:
    """The run's val split: the explicit ``val_json`` / ``val_images`` where the config names them,
    else the val split of ``data`` (a folder, or the synthetic dataset of the ``synth_*`` keys)."""
    from losslab.data import CocoInstances, build_dataset

    if train.get("val_json"):
        return CocoInstances(train["val_json"], train.get("val_images") or Path(train["val_json"]).parent)
    return build_dataset(_dataset_root(train, "instance"), "val", task="instance")


def load_ground_truth(run_dir: Path, image_ids: Sequence[int]) -> GroundTruth:
    """The val images ``image_ids`` of the run's dataset with their ground-truth masks drawn.

    Raises:
        ValueError: the run folder has no readable config, or its dataset has no val split.
    """
    dataset = _val_split(_run_config(run_dir))
    index = {int(info["id"]): i for i, info in enumerate(dataset.images)}
    pictures, objects = {}, {}
    for image_id in image_ids:
        if image_id not in index:
            continue
        sample = dataset.load_sample(index[image_id])
        keep = ~sample["iscrowd"] if len(sample["iscrowd"]) else np.zeros(0, bool)
        masks = sample["masks"][keep]
        pictures[image_id] = draw_ground_truth(sample["image"].astype(np.uint8), masks)
        objects[image_id] = len(masks)
    return GroundTruth(pictures, objects)


def draw_ground_truth(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Each ground-truth mask filled in green over the image, outlined in white.

    Shape:
        image: ``(H, W, 3)`` uint8 RGB; masks: ``(n, H, W)``; returns ``(H, W, 3)`` uint8 RGB.
    """
    import cv2

    out = image.copy()
    color = np.asarray(GT_COLOR, np.float32)
    for mask in masks:
        m = mask.astype(bool)
        out[m] = ((1 - GT_ALPHA) * out[m] + GT_ALPHA * color).astype(np.uint8)
    for mask in masks:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def _read(path: Path) -> np.ndarray:
    import matplotlib.pyplot as plt

    picture = plt.imread(str(path))
    if picture.dtype != np.uint8:
        picture = (np.clip(picture, 0, 1) * 255).astype(np.uint8)
    return picture[..., :3] if picture.ndim == 3 else np.stack([picture] * 3, axis=-1)


def plot_sample_grid(
    rows: Mapping[str, Sequence[np.ndarray | Path | None]], headers: Sequence[str], path: Path, title: str = ""
) -> Path | None:
    """A grid of pictures: a row per entry of ``rows`` (its label in the left column), a column per
    header; a None cell stays blank. Saved as a JPEG.

    Shape:
        each picture: ``(H, W, 3)`` uint8 RGB (or a PNG path).
    """
    rows = {k: list(v) for k, v in rows.items() if any(c is not None for c in v)}
    if not rows or not headers:
        return None
    from losslab.report.plots import _pyplot

    plt = _pyplot()
    cols = len(headers)
    width = [0.75] + [1.0] * cols  # the label column, then the pictures
    fig, axes = plt.subplots(
        len(rows), cols + 1, figsize=(CELL_INCHES * sum(width), CELL_INCHES * len(rows) + 0.5),
        squeeze=False, gridspec_kw={"width_ratios": width}, layout="constrained",
    )  # fmt: skip
    for r, (label, cells) in enumerate(rows.items()):
        axes[r][0].text(0.02, 0.5, textwrap.fill(label, 14), fontsize=9, va="center", ha="left", wrap=True)
        for c in range(cols + 1):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(c > 0)
            cell = cells[c - 1] if 0 < c <= len(cells) else None
            if cell is not None:
                ax.imshow(_read(cell) if isinstance(cell, Path) else cell)
            if r == 0 and c > 0:
                ax.set_title(headers[c - 1], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="jpeg", facecolor="white", pil_kwargs={"quality": JPEG_QUALITY})
    plt.close(fig)
    return path


def _order(ids: Sequence[int], objects: Mapping[int, int]) -> list[int]:
    """Images holding an object first (a blank row then means a miss, not an empty image)."""
    return sorted(ids, key=lambda i: (objects.get(i, 0) == 0, ids.index(i)))


def make_sample_grid(
    samples: Mapping[str, Sequence[Path]],
    run_dir: Path,
    path: Path,
    seed: int | None,
    task: str = "instance",
    max_images: int = 4,
) -> SampleGrid | None:
    """The grid of ``samples`` (``{config: [samples/<id>.png]}``, the same ids in every row) with the
    ground truth of ``run_dir``'s val split on top (``task="instance"``; a dense model's pictures
    already outline their ground truth)."""
    if not samples:
        return None
    names = [p.stem for p in next(iter(samples.values()))]
    ids = [int(n) for n in names if n.isdigit()]
    note, truth = "", None
    try:
        if task == "instance" and len(ids) == len(names):
            truth = load_ground_truth(run_dir, ids)
    except (ValueError, OSError, KeyError) as exc:
        note = f"ground truth unavailable: {exc}"
    objects = truth.objects if truth else {}
    chosen = _order(ids, objects)[:max_images] if ids else list(range(min(max_images, len(names))))
    by_id = {int(p.stem): i for i, p in enumerate(next(iter(samples.values()))) if p.stem.isdigit()}
    position = [by_id[i] for i in chosen] if ids else chosen
    rows: dict[str, list[np.ndarray | Path | None]] = {}
    if truth and truth.pictures:
        rows["ground truth"] = [truth.pictures.get(i) for i in chosen]
    rows.update({label: [paths[k] for k in position] for label, paths in samples.items()})
    headers = [f"image {i}" + (f" · {objects[i]} obj." if i in objects else "") for i in chosen] if ids else names
    threshold = score_threshold() if task == "instance" else None
    shown = f"detections with score ≥ {threshold:.2f}" if threshold is not None else ""
    seeded = f"seed {seed}" if seed is not None else ""
    written = plot_sample_grid(rows, headers, path, title=", ".join(t for t in (shown, seeded) if t))
    if written is None:
        return None
    has_truth = "ground truth" in rows
    return SampleGrid(written, chosen if ids else [], seed, threshold, task, has_truth, note)
