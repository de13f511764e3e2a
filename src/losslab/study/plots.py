"""The report's figures (matplotlib, Agg, PNG): loss curves (the paper's Fig. 2), AP against the IoU
threshold, precision-recall curves, and a grid of sample predictions (the paper's Fig. 3).

Each function takes plain data and an output path and returns the path (or None when there is
nothing to draw), so the report decides what exists and the plots only draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "IOU_THRESHOLDS",
    "plot_ap_vs_iou",
    "plot_curves",
    "plot_pr_curves",
    "plot_sample_grid",
    "smooth",
]

#: COCO's IoU thresholds, as the report's AP50 ... AP95 columns.
IOU_THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]

Curve = Sequence[tuple[float, float]]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average (same length; the ends average over what they have)."""
    y = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(y) < 3:
        return y
    kernel = np.ones(window)
    num = np.convolve(np.nan_to_num(y), kernel, mode="same")
    den = np.convolve(np.isfinite(y).astype(np.float64), kernel, mode="same")
    return num / np.maximum(den, 1)


def plot_curves(panels: Mapping[str, Mapping[str, Curve]], path: Path, title: str = "") -> Path | None:
    """One panel per curve kind (``{"mask loss": {config: [(step, value)]}}``), one line per config."""
    panels = {k: v for k, v in panels.items() if any(len(c) for c in v.values())}
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels.items(), strict=True):
        for label, curve in curves.items():
            if not curve:
                continue
            steps = np.asarray([s for s, _ in curve], dtype=np.float64)
            values = np.asarray([v for _, v in curve], dtype=np.float64)
            ax.plot(steps, smooth(values, max(1, len(values) // 40)), label=label, linewidth=1.4)
        ax.set_xlabel("iteration")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_ap_vs_iou(series: Mapping[str, Mapping[str, Sequence[float | None]]], path: Path) -> Path | None:
    """AP at each IoU threshold, one panel per kind (``{"mask": {config: [AP50, ..., AP95]}}``)."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 4.2), squeeze=False)
    for ax, (kind, rows) in zip(axes[0], series.items(), strict=True):
        for label, values in rows.items():
            y = [np.nan if v is None else v for v in values]
            ax.plot(IOU_THRESHOLDS[: len(y)], y, marker="o", markersize=3, label=label)
        ax.set_xlabel("IoU threshold")
        ax.set_ylabel("AP (%)")
        ax.set_title(f"{kind} AP against the IoU threshold")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _save(fig, path)


def plot_pr_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], path: Path, title: str) -> Path | None:
    """Precision against recall, one line per config (``{config: {"recall": [...], "precision": [...]}}``)."""
    curves = {k: v for k, v in curves.items() if v.get("recall") and v.get("precision")}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, curve in curves.items():
        recall = np.asarray(curve["recall"], dtype=np.float64)
        precision = np.asarray(curve["precision"], dtype=np.float64)
        n = min(len(recall), len(precision))
        precision = np.where(precision[:n] < 0, np.nan, precision[:n])  # COCOeval marks "no data" with -1
        ax.plot(recall[:n], precision, label=label)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _save(fig, path)


def plot_sample_grid(samples: Mapping[str, Sequence[Path]], path: Path, max_images: int = 4) -> Path | None:
    """A grid of sample predictions: a row per config, a column per validation image."""
    samples = {k: list(v)[:max_images] for k, v in samples.items() if v}
    if not samples:
        return None
    plt = _pyplot()
    cols = max(len(v) for v in samples.values())
    fig, axes = plt.subplots(len(samples), cols, figsize=(2.6 * cols + 1.5, 2.6 * len(samples)), squeeze=False)
    for r, (label, paths) in enumerate(samples.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(paths):
                ax.imshow(plt.imread(str(paths[c])))
                if r == 0:
                    ax.set_title(Path(paths[c]).stem, fontsize=8)
        axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
