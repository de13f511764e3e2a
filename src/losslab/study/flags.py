"""What can make a study's number mean less than it seems, measured per run and per configuration.

Flags (the names every table, the summary and ``results.csv`` use):

- ``"collapsed"``: mask AP near zero while box AP is not: the detector works, the masks do not
  (mean over seeds: mask AP below ``COLLAPSE_MASK_AP`` with box AP at least ``COLLAPSE_BOX_AP``).
  The detail says how, from the evaluation's ``mask_fill`` (the percent of its box each confident
  detection's mask covers): masks that fill their boxes (at least ``FILLED_BOXES``) or empty masks
  (below ``EMPTY_MASKS``), beside the ground truth's fill.
- ``"still falling"``: the run's training loss had not reached its plateau (``plateau``).
- ``"loss rising"``: the loss grew over the end of training (the same measurement, upwards).
- ``"1 seed"``: one seed only, so no interval covers training noise.
- ``"steps skipped"``: the trainer skipped steps whose loss was not finite (``result["skipped_steps"]``
  and the run folder's ``skipped_steps.csv``).
- ``"masks failed"``: in a tuned study, what "collapsed" becomes for a configuration whose masks failed
  at its chosen value but trained at some other value tried: "collapsed" is said only of a loss that
  collapsed at every value tried (``StudyResults.flags_of``).
- ``"best value at the edge of the grid"``: a tuned key's chosen value is the smallest or largest
  tried, so the best may lie outside the grid.

The plateau, measured: take the total training loss that ``metrics.csv`` logged over the last
``PLATEAU_FRACTION`` (20 %) of the run's iterations (after iteration 0.8 x the last one), fit a
least-squares line against the iteration, and express its slope relative to the mean loss of that
window, per 1000 iterations, with its 95 % t-interval. The *fall* is how much the fitted line drops
across the window, relative to the same mean. A run has *converged* when its fall is below
``PLATEAU_TOLERANCE`` (5 %) or the slope's interval covers zero; it is *still falling* when it fell by
at least the tolerance and the interval lies below zero. Fewer than ``MIN_PLATEAU_POINTS`` logged
points leave it undecided (``converged`` is None).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sst

__all__ = [
    "COLLAPSED",
    "COLLAPSE_BOX_AP",
    "COLLAPSE_MASK_AP",
    "EDGE_OF_GRID",
    "EMPTY_MASKS",
    "FILLED_BOXES",
    "LOSS_RISING",
    "MASKS_FAILED",
    "MIN_PLATEAU_POINTS",
    "ONE_SEED",
    "PLATEAU_FRACTION",
    "PLATEAU_TOLERANCE",
    "STEPS_SKIPPED",
    "STILL_FALLING",
    "TOTAL_TERMS",
    "Flag",
    "Plateau",
    "RunHealth",
    "collapse_mode",
    "config_flags",
    "count_skipped_rows",
    "is_collapsed",
    "plateau",
    "run_health",
]

COLLAPSED = "collapsed"
STILL_FALLING = "still falling"
LOSS_RISING = "loss rising"
ONE_SEED = "1 seed"
STEPS_SKIPPED = "steps skipped"
MASKS_FAILED = "masks failed"
EDGE_OF_GRID = "best value at the edge of the grid"

#: The share of a run's last iterations over which its plateau is measured.
PLATEAU_FRACTION = 0.2
#: Converged: the fitted loss falls by less than this share of its mean over the window.
PLATEAU_TOLERANCE = 0.05
#: Fewer logged points in the window leave the plateau undecided.
MIN_PLATEAU_POINTS = 4
#: Collapsed: mask AP (percent) below this ...
COLLAPSE_MASK_AP = 1.0
#: ... while box AP (percent) is at least this.
COLLAPSE_BOX_AP = 5.0
#: A collapse's masks fill their boxes when they cover at least this percent of them ...
FILLED_BOXES = 90.0
#: ... and are empty below this.
EMPTY_MASKS = 5.0
#: ``metrics.csv`` columns holding the total training loss (the first present wins).
TOTAL_TERMS = ("total", "loss", "total_loss")

Curve = Sequence[tuple[int, float | None]]


@dataclass(frozen=True)
class Flag:
    """One warning about a run or a configuration: its name (one of the constants) and the numbers."""

    name: str
    detail: str = ""
    #: for ``"collapsed"``: ``collapse_mode``'s words ("" when unknown or neither)
    mode: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name


@dataclass(frozen=True)
class Plateau:
    """The end of a run's loss curve (see the module docstring).

    Attributes:
        slope: the fitted slope relative to the window's mean loss, per 1000 iterations (-0.12:
            falling by 12 % of the loss per 1000 iterations).
        low, high: its 95 % t-interval.
        fall: the fitted line's drop across the window (``fraction`` x the last iteration long)
            relative to its mean loss (negative: it rose).
        start, end: the first and last logged iteration in the window.
        points: logged points in the window.
        state: ``"converged"``, ``"still falling"``, ``"rising"`` or ``"too short"``.
    """

    slope: float
    low: float
    high: float
    fall: float
    start: int
    end: int
    points: int
    state: str

    @property
    def converged(self) -> bool | None:
        """True when converged, False when still falling or rising, None when too short to tell."""
        return None if self.state == "too short" else self.state == "converged"

    def describe(self) -> str:
        """``"slope -12.1 %/1k it [-20.3, -3.9], fall 6.0 % over it. 360-450: still falling"``."""
        if self.state == "too short":
            return f"{self.points} logged points in it. {self.start}-{self.end}: too few to tell"
        return (
            f"slope {100 * self.slope:+.1f} %/1k it [{100 * self.low:+.1f}, {100 * self.high:+.1f}], "
            f"fall {100 * self.fall:.1f} % over it. {self.start}-{self.end}: {self.state}"
        )


def _window(curve: Curve, fraction: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The points after ``(1 - fraction) x`` the last iteration, and the window's length in iterations."""
    points = [(int(s), float(v)) for s, v in curve if v is not None and math.isfinite(float(v))]
    if not points:
        return np.zeros(0), np.zeros(0), 0.0
    last = max(s for s, _ in points)
    cut = last * (1 - fraction)
    kept = [(s, v) for s, v in points if s > cut]
    return np.asarray([s for s, _ in kept], np.float64), np.asarray([v for _, v in kept], np.float64), last - cut


def plateau(
    curve: Curve, fraction: float = PLATEAU_FRACTION, tolerance: float = PLATEAU_TOLERANCE, confidence: float = 0.95
) -> Plateau:
    """Measure whether a loss curve ``[(iteration, loss), ...]`` ended on its plateau.

    Args:
        curve: the logged total loss by iteration (None and non-finite values are left out).
        fraction: the window, as a share of the run's iterations (its last ones).
        tolerance: the relative fall across the window below which the run counts as converged.
        confidence: of the slope's interval.
    """
    x, y, length = _window(curve, fraction)
    start, end = (int(x[0]), int(x[-1])) if len(x) else (0, 0)
    mean = float(y.mean()) if len(y) else math.nan
    if len(x) < MIN_PLATEAU_POINTS or x[-1] == x[0] or not mean > 0:
        return Plateau(math.nan, math.nan, math.nan, math.nan, start, end, len(x), "too short")
    fit = sst.linregress(x, y)
    half = float(sst.t.ppf((1 + confidence) / 2, len(x) - 2)) * float(fit.stderr)
    scale = 1000.0 / mean
    slope, low, high = fit.slope * scale, (fit.slope - half) * scale, (fit.slope + half) * scale
    fall = -float(fit.slope) * length / mean
    covers_zero = low <= 0 <= high
    if fall >= tolerance and not covers_zero:
        state = "still falling"
    elif -fall >= tolerance and not covers_zero:
        state = "rising"
    else:
        state = "converged"
    return Plateau(float(slope), float(low), float(high), fall, start, end, len(x), state)


def is_collapsed(mask_ap: float | None, box_ap: float | None) -> bool:
    """Mask AP near zero while box AP is not (both in percent); False when either is unknown."""
    if mask_ap is None or box_ap is None or math.isnan(mask_ap) or math.isnan(box_ap):
        return False
    return mask_ap < COLLAPSE_MASK_AP and box_ap >= COLLAPSE_BOX_AP


def collapse_mode(fill: float | None) -> str:
    """How collapsed masks failed, from the percent of their boxes they cover: ``"masks fill their
    boxes"``, ``"masks are empty"`` or ``""`` (unknown, or in between)."""
    if fill is None or math.isnan(fill):
        return ""
    if fill >= FILLED_BOXES:
        return "masks fill their boxes"
    return "masks are empty" if fill < EMPTY_MASKS else ""


def _collapsed(mask_ap: float, box_ap: float, fill: float | None, gt_fill: float | None) -> Flag:
    detail = f"mask AP {mask_ap:.2f}, box AP {box_ap:.2f}"
    mode = collapse_mode(fill)
    if mode:
        truth = f", the ground truth's {gt_fill:.0f} %" if gt_fill is not None and math.isfinite(gt_fill) else ""
        detail += f"; {mode}: {fill:.0f} % of each box{truth}"
    return Flag(COLLAPSED, detail, mode)


def count_skipped_rows(run_dir: str | Path | None) -> int | None:
    """Rows of the run folder's ``skipped_steps.csv`` (one per skipped step), None without the file."""
    if run_dir is None:
        return None
    path = Path(run_dir) / "skipped_steps.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        return max(0, sum(1 for _ in csv.reader(fh)) - 1)


@dataclass(frozen=True)
class RunHealth:
    """What the flags need to know about one done run."""

    run_id: str
    seed: int
    plateau: Plateau | None
    iterations: int | None
    skipped_steps: int
    mask_ap: float | None = None
    box_ap: float | None = None
    mask_fill: float | None = None
    gt_fill: float | None = None

    @property
    def collapsed(self) -> bool:
        return is_collapsed(self.mask_ap, self.box_ap)

    def flags(self) -> list[Flag]:
        """This run's flags (no ``"1 seed"``: that is a configuration's)."""
        out = []
        if self.collapsed:
            out.append(_collapsed(self.mask_ap, self.box_ap, self.mask_fill, self.gt_fill))
        if self.plateau is not None and self.plateau.state in ("still falling", "rising"):
            name = STILL_FALLING if self.plateau.state == "still falling" else LOSS_RISING
            out.append(Flag(name, f"{100 * self.plateau.slope:+.0f} %/1k it"))
        if self.skipped_steps:
            of = f" of {self.iterations}" if self.iterations else ""
            out.append(Flag(STEPS_SKIPPED, f"{self.skipped_steps}{of}"))
        return out


def run_health(
    run_id: str,
    seed: int,
    losses: Mapping[str, Curve],
    metrics: Mapping[str, float | None],
    run_dir: str | Path | None = None,
) -> RunHealth:
    """One run's health from its logged losses (``metrics.csv`` as the store holds it), its metrics
    and its folder's ``skipped_steps.csv``."""
    total = next((t for t in TOTAL_TERMS if t in losses), None)
    curve = plateau(losses[total]) if total else None
    stored = metrics.get("skipped_steps")
    rows = count_skipped_rows(run_dir)
    skipped = max(int(stored or 0), rows or 0)
    iterations = metrics.get("iterations")
    return RunHealth(
        run_id,
        seed,
        curve,
        int(iterations) if iterations is not None else None,
        skipped,
        metrics.get("segm.AP"),
        metrics.get("bbox.AP"),
        metrics.get("mask_fill.detections"),
        metrics.get("mask_fill.ground_truth"),
    )


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def config_flags(runs: Sequence[RunHealth]) -> list[Flag]:
    """A configuration's flags from its done runs (one per seed)."""
    if not runs:
        return []
    out = []
    mask, box = _mean([r.mask_ap for r in runs]), _mean([r.box_ap for r in runs])
    if is_collapsed(mask, box):
        fill, gt_fill = _mean([r.mask_fill for r in runs]), _mean([r.gt_fill for r in runs])
        out.append(_collapsed(mask, box, fill, gt_fill))
    for name, state in ((STILL_FALLING, "still falling"), (LOSS_RISING, "rising")):
        hit = [r for r in runs if r.plateau is not None and r.plateau.state == state]
        if hit:
            out.append(Flag(name, f"{len(hit)} of {len(runs)} runs"))
    if len(runs) == 1:
        out.append(Flag(ONE_SEED))
    skipped = [r for r in runs if r.skipped_steps]
    if skipped:
        worst = max(skipped, key=lambda r: r.skipped_steps)
        of = f" of {worst.iterations}" if worst.iterations else ""
        where = f"{len(skipped)} of {len(runs)} runs, up to {worst.skipped_steps}{of}"
        out.append(Flag(STEPS_SKIPPED, where))
    return out
