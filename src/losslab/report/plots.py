"""The report's figures (matplotlib, Agg, palette PNG): loss curves (the paper's Fig. 2) and validation
AP over iterations, AP against the IoU threshold, precision-recall curves and AP against label noise.
(The grid of sample predictions, the paper's Fig. 3, is ``losslab.report.samples``.)

Each function takes plain data and an output path and returns the path (or None when there is
nothing to draw), so the report decides what exists and the plots only draw.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "IOU_THRESHOLDS",
    "plot_ap_vs_iou",
    "plot_curves",
    "plot_noise_robustness",
    "plot_pr_curves",
    "plot_tuning",
    "smooth",
    "smoothing_window",
    "to_palette_png",
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


def smoothing_window(n: int) -> int:
    """The moving-average window for ``n`` logged points: a tenth of them, at least 3 (from 10 on)."""
    return max(3, n // 10) if n >= 10 else 1


def _legend_below(fig, axes, n: int) -> None:
    """One legend for the figure, under its panels: off the data, whatever the curves do."""
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(n, 3), fontsize=9, frameon=False)


def plot_curves(
    panels: Mapping[str, Mapping[str, Curve]], path: Path, title: str = "", raw: bool = True, markers: bool = False
) -> Path | None:
    """One panel per curve kind (``{"total loss": {config: [(step, value)]}}``), one line per config.

    Each line is a moving average (``smoothing_window``) drawn over its raw values in a faint line of
    the same colour; ``raw=False`` draws the values as they are (``markers``: a dot per point).
    """
    panels = {k: v for k, v in panels.items() if any(len(c) for c in v.values())}
    if not panels:
        return None
    plt = _pyplot()
    labels = sorted({label for curves in panels.values() for label in curves}, key=_order(panels))
    colors = _colors(plt, labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.6), squeeze=False, layout="constrained")
    for ax, (name, curves) in zip(axes[0], panels.items(), strict=True):
        for label, curve in curves.items():
            if not curve:
                continue
            steps = np.asarray([s for s, _ in curve], dtype=np.float64)
            values = np.asarray([v for _, v in curve], dtype=np.float64)
            if raw:
                ax.plot(steps, values, color=colors[label], linewidth=0.6, alpha=0.25)
                values = smooth(values, smoothing_window(len(values)))
            marker = "o" if markers else None
            ax.plot(steps, values, color=colors[label], label=label, linewidth=1.5, marker=marker, markersize=3)
        ax.set_xlabel("iteration")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0], len(labels))
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _order(panels: Mapping[str, Mapping[str, Curve]]):
    first = [label for curves in panels.values() for label in curves]
    return lambda label: first.index(label)


def _colors(plt, labels: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def plot_ap_vs_iou(series: Mapping[str, Mapping[str, Sequence[float | None]]], path: Path) -> Path | None:
    """AP at each IoU threshold, one panel per kind (``{"mask": {config: [AP50, ..., AP95]}}``)."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 4.6), squeeze=False, layout="constrained")
    n = 0
    for ax, (kind, rows) in zip(axes[0], series.items(), strict=True):
        for label, values in rows.items():
            y = [np.nan if v is None else v for v in values]
            ax.plot(IOU_THRESHOLDS[: len(y)], y, marker="o", markersize=3, label=label)
        n = max(n, len(rows))
        top = max((v for values in rows.values() for v in values if v is not None), default=0.0)
        ax.set_xlabel("IoU threshold")
        ax.set_ylabel("AP (%)")
        ax.set_title(f"{kind} AP against the IoU threshold")
        ax.set_ylim(-1, min(100.0, max(5.0, 1.1 * top)))  # the informative range, not 0-100
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0], n)
    return _save(fig, path)


def plot_tuning(
    series: Mapping[str, Sequence[tuple[float, float | None, bool]]], path: Path, key: str, metric: str
) -> Path | None:
    """The tuning metric against a tuned value, one line per configuration (``{config: [(value, score,
    chosen)]}``); the chosen value is ringed, a point without a score (a failed run) is left out; a log
    x-axis when every value is positive."""
    series = {k: v for k, v in series.items() if any(s is not None for _, s, _ in v)}
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    colors = _colors(plt, list(series))
    for label, points in series.items():
        x = [v for v, _, _ in points]
        y = [np.nan if s is None else s for _, s, _ in points]
        ax.plot(x, y, marker="o", markersize=4, label=label, color=colors[label])
        for v, s, chosen in points:
            if chosen and s is not None:
                ax.plot([v], [s], marker="o", markersize=11, fillstyle="none", color=colors[label])
    if all(v > 0 for points in series.values() for v, _, _ in points):
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(f"{metric} on the tuning split")
    ax.set_title(f"Tuning: {metric} against {key} (ringed: chosen)")
    ax.grid(alpha=0.3)
    _legend_below(fig, [ax], len(series))
    return _save(fig, path)


def plot_pr_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], path: Path, title: str) -> Path | None:
    """Precision against recall, one line per config (``{config: {"recall": [...], "precision": [...]}}``)."""
    curves = {k: v for k, v in curves.items() if v.get("recall") and v.get("precision")}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.8), layout="constrained")
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
    _legend_below(fig, [ax], len(curves))
    return _save(fig, path)


def plot_noise_robustness(
    series: Mapping[str, Sequence[tuple[float, float, float]]], levels: Sequence[str], path: Path, metric: str
) -> Path | None:
    """A metric against the label-noise level (categorical x, in grid order), one line per loss.

    Args:
        series: loss -> one ``(mean, low, high)`` per level (NaN: no value; NaN bounds: no band).
        levels: the x labels, as many as each series has values.
        path: the PNG to write.
        metric: the y axis label (``"mask AP (%)"``).
    """
    series = {k: v for k, v in series.items() if any(np.isfinite(m) for m, _, _ in v)}
    if not series:
        return None
    plt = _pyplot()
    colors = _colors(plt, list(series))
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    x = np.arange(len(levels))
    for label, values in series.items():
        mean, low, high = (np.asarray(col, dtype=np.float64) for col in zip(*values, strict=True))
        ax.plot(x, mean, color=colors[label], marker="o", markersize=4, linewidth=1.5, label=label)
        if np.isfinite(low).any():
            ax.fill_between(x, low, high, color=colors[label], alpha=0.15, linewidth=0)
    ax.set_xticks(x, list(levels), rotation=20, ha="right")
    ax.set_xlabel("label noise of the training masks")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against label noise")
    ax.grid(alpha=0.3)
    _legend_below(fig, [ax], len(series))
    return _save(fig, path)


def to_palette_png(source: Path | io.BytesIO, path: Path) -> Path:
    """Write ``source`` (a PNG) as a 256-colour palette PNG without alpha: a line plot looks the same
    at a third of an RGBA PNG's size."""
    from PIL import Image

    with Image.open(source) as image:
        palette = image.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)
    return path


def _save(fig, path: Path, dpi: int = 100) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png", facecolor="white")
    plt.close(fig)
    buffer.seek(0)
    return to_palette_png(buffer, path)
