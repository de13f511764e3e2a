"""The report's figures with their captions: which the stored data allows, drawn one panel per picture
(a page lays them side by side on a wide screen and stacks them on a phone).

- ``loss_curves.png`` / ``loss_mask.png``: the total training loss and its mask term (smoothed, raw faint);
- ``val_ap.png``: validation AP over iterations, where the runs evaluated before their end;
- ``ap_vs_iou.png`` / ``ap_vs_iou_box.png``: mask and box AP at each IoU threshold;
- ``pr_curves.png``: mask precision-recall at IoU 0.5;
- ``samples.jpg``: the sample grid with its ground truth (``losslab.report.samples``);
- ``losses.png``: the catalogue's loss / gradient picture of the study's mask losses.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

from losslab.engine.metric_keys import AP_KEYS
from losslab.report import plots
from losslab.report.curves import eval_curves, loss_panels, pr_curves, sample_images
from losslab.report.document import Figure
from losslab.report.samples import make_sample_grid
from losslab.report.tables import StudyResults
from losslab.study.store import run_dir_of

__all__ = ["make_plots"]

_AP = list(AP_KEYS)


def _figure(path: Path | None, caption: str) -> Figure | None:
    return Figure(path, caption) if path is not None else None


def _loss_figures(results: StudyResults, plot_dir: Path) -> dict[str, Figure | None]:
    panels = loss_panels(results)
    n = max((len(c) for curves in panels.values() for c in curves.values()), default=0)
    smoothing = (
        f"mean over seeds, a moving average over {plots.smoothing_window(n)} logged points with the raw values "
        "faint behind"
    )
    out: dict[str, Figure | None] = {}
    for name, curves in panels.items():
        total = name == "total loss"
        path = plot_dir / ("loss_curves.png" if total else "loss_mask.png")
        what = "Training loss by iteration" if total else f"The {name} by iteration"
        caption = (
            f"{what}, {smoothing}. Each loss has its own scale: compare where a curve flattens, not its height "
            "against another loss's."
        )
        out[path.stem] = _figure(plots.plot_curves({name: curves}, path), caption)
    return out


def _ap_figures(results: StudyResults, plot_dir: Path) -> dict[str, Figure | None]:
    out: dict[str, Figure | None] = {}
    for kind, group in (("mask", "segm"), ("box", "bbox")):
        rows = {}
        for cfg in results.configs:
            values = [cfg.interval(f"{group}.{ap}").mean for ap in _AP]
            if any(not math.isnan(v) for v in values):
                rows[cfg.label] = [None if math.isnan(v) else v for v in values]
        path = plot_dir / ("ap_vs_iou.png" if kind == "mask" else "ap_vs_iou_box.png")
        caption = (
            f"{kind.capitalize()} AP at each IoU threshold, mean over seeds: where the configurations differ, at the "
            "loose or the strict thresholds (the y axis spans the values reached)."
        )
        out[path.stem] = _figure(plots.plot_ap_vs_iou({kind: rows} if rows else {}, path), caption)
    return out


def make_plots(results: StudyResults, plot_dir: Path) -> dict[str, Figure]:
    """The figures the stored data allows, with their captions, in the report's order."""

    def run_dir(run_id: str) -> Path:
        return run_dir_of(results.store.path.parent, run_id)

    made = _loss_figures(results, plot_dir)
    label, curves = eval_curves(results, run_dir)
    made["val_ap"] = _figure(
        plots.plot_curves({f"validation {label}": curves}, plot_dir / "val_ap.png", raw=False, markers=True),
        f"Validation {label} at each intermediate evaluation (eval_every) and at the end, mean over seeds: a "
        "curve still rising at its last point has not finished learning.",
    )
    made.update(_ap_figures(results, plot_dir))
    made["pr_curves"] = _figure(
        plots.plot_pr_curves(pr_curves(results), plot_dir / "pr_curves.png", "mask PR at IoU 0.5"),
        "Mask precision against recall at IoU 0.5, each configuration's first seed.",
    )
    made["samples"] = _sample_figure(results, plot_dir, run_dir)
    made["losses"] = _catalogue_picture(results, plot_dir / "losses.png")
    return {k: v for k, v in made.items() if v is not None}


def _sample_figure(results: StudyResults, plot_dir: Path, run_dir: Callable[[str], Path]) -> Figure | None:
    samples = sample_images(results, run_dir)
    first = next((c for c in results.configs if c.label in samples), None)
    if first is None:
        return None
    seed = min(first.metrics)
    # Instance models report COCO segm metrics; dense ones mask IoU / Dice.
    task = "instance" if any(k.startswith("segm.") for k in first.metrics[seed]) else "dense"
    grid = make_sample_grid(samples, run_dir(first.run_ids[seed]), plot_dir / "samples.jpg", seed, task)
    if grid is None:
        return None
    if grid.task != "instance":
        what = "the predicted mask (sigmoid > 0.5) in colour, the ground truth's outline in white"
    elif grid.threshold is not None:
        what = f"detections with score ≥ {grid.threshold:.2f} (masks at 0.5), each with its class and score"
    else:
        what = "the trainer's drawn detections"
    if grid.ground_truth:
        truth = (
            "The top row is the ground truth (green, outlined): a blank picture below it is a miss, not an empty image."
        )
    else:
        truth = f"No ground-truth row ({grid.note})." if grid.note else ""
    ids = ", ".join(map(str, grid.image_ids))
    caption = (
        f"Sample predictions on validation images {ids} (those holding an object first), one row per "
        f"configuration, from its seed-{grid.seed} run: {what}. {truth}"
    )
    return Figure(grid.path, caption.strip())


def _catalogue_picture(results: StudyResults, path: Path) -> Figure | None:
    """The loss catalogue's loss/gradient picture of the study's mask losses (if the catalogue has one)."""
    names: dict[str, str] = {}
    for cfg in results.configs:
        spec = cfg.config.get("mask_loss")
        if isinstance(spec, str) and spec not in names:
            names[spec] = cfg.label
    if not names:
        return None
    try:
        from losslab.losses.plot import plot_losses
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # equivalences are already in the report's notes
            drawn = plots.to_palette_png(Path(plot_losses(list(names), path, title="the study's mask losses")), path)
    except (ValueError, RuntimeError):
        return None
    legend = "; ".join(f"{spec} = {label}" for spec, label in names.items())
    caption = (
        f"The study's mask losses from the catalogue, by spec ({legend}): the loss of one pixel and its gradient "
        "against the predicted probability, and the loss as a predicted disk slides off its target."
    )
    return Figure(drawn, caption)
