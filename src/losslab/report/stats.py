"""Statistics for a study: is a loss better than the baseline, or is the difference noise?

Pure functions on plain numbers:

- ``mean_ci``: the mean over seeds with a Student-t confidence interval;
- ``compare_paired``: the per-seed difference against the baseline (same seed, same data order), its
  t-interval, a paired t-test (and a Wilcoxon signed-rank test from six pairs on) and a verdict;
- ``bootstrap_ci`` / ``compare_bootstrap``: with a single seed, intervals from resampling the
  validation images (per-image scores, paired by image);
- ``holm`` / ``adjust_holm``: the Holm-Bonferroni correction over the configurations compared with
  one baseline, so that nine comparisons do not get nine chances to find a "win" in noise.

A single comparison's verdict is ``"better"`` or ``"worse"`` only when the interval of the difference
excludes zero (equivalently, the two-sided test rejects at 1 - confidence); after ``adjust_holm`` the
verdict follows the Holm-adjusted p instead. Otherwise it is ``"undecided"``. A study's tables use
``losslab.report.verdicts.compare_family``, which pools the variance over the config x seed layout and
adds ``"equivalent"`` (within a stated margin, by TOST).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy import stats as sst

__all__ = [
    "BETTER",
    "EQUIVALENT",
    "UNDECIDED",
    "VERDICTS",
    "WORSE",
    "Comparison",
    "Interval",
    "adjust_holm",
    "bootstrap_ci",
    "compare_bootstrap",
    "compare_paired",
    "holm",
    "mean_ci",
]

BETTER = "better"
WORSE = "worse"
EQUIVALENT = "equivalent"
UNDECIDED = "undecided"
#: Every verdict, in the order a summary lists them.
VERDICTS = (BETTER, WORSE, EQUIVALENT, UNDECIDED)

Values = Sequence[float] | Mapping[object, float]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval (``low``/``high`` are NaN when ``n < 2``)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN when there is no interval)."""
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class Comparison:
    """A configuration against the baseline.

    Attributes:
        diff: the mean difference (configuration - baseline) and its interval.
        p_value: two-sided p of the paired t-test (or of the bootstrap); NaN with fewer than 2 pairs.
        wilcoxon_p: two-sided p of the Wilcoxon signed-rank test (None below 6 pairs).
        verdict: ``"better"``, ``"worse"``, ``"equivalent"`` or ``"undecided"``, in the metric's sense
            (from ``p_adjusted`` when a correction was applied).
        method: the test: ``"paired t"``, ``"pooled t (...)"`` or ``"bootstrap"``.
        p_adjusted: the p after the correction for multiple comparisons (None: uncorrected).
        correction: the correction's name (``"Holm"``), or ``""``.
        se: the standard error of the difference (NaN when unknown).
        df: its degrees of freedom (NaN when unknown).
        p_equivalence: the corrected TOST p of ``|difference| < margin`` (None: not tested).
        margin: the equivalence margin (None: not tested).
        mde: the smallest difference the test detects with power 0.8 (None: not computed).
    """

    diff: Interval
    p_value: float
    wilcoxon_p: float | None
    verdict: str
    method: str
    p_adjusted: float | None = None
    correction: str = ""
    se: float = math.nan
    df: float = math.nan
    p_equivalence: float | None = None
    margin: float | None = None
    mde: float | None = None

    def describe(self, digits: int = 2) -> str:
        """``"+1.20 [-0.30, 2.70], p=0.08: undecided"``."""
        d = self.diff
        text = f"{d.mean:+.{digits}f}"
        if not math.isnan(d.low):
            text += f" [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
        if not math.isnan(self.p_value):
            text += f", p{_p_text(self.p_value)}"
        if self.p_adjusted is not None and not math.isnan(self.p_adjusted):
            text += f", {self.correction} p{_p_text(self.p_adjusted)}"
        if self.p_equivalence is not None and self.margin is not None and not math.isnan(self.p_equivalence):
            tag = f"{self.correction} " if self.correction else ""
            text += f", within ±{self.margin:g}: {tag}p{_p_text(self.p_equivalence)}"
        if self.method == "bootstrap":
            text += f" (bootstrap, {self.diff.n} images)"
        elif self.wilcoxon_p is not None:
            text += f", Wilcoxon p={self.wilcoxon_p:.3g}"
        return f"{text}: {self.verdict}"


def _p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"={p:.3g}"


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval of ``values`` (None and NaN left out).

    >>> mean_ci([1.0, 2.0, 3.0]).mean
    2.0
    """
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(sst.t.ppf((1 + confidence) / 2, n - 1)) * sem
    return Interval(mean, mean - half, mean + half, n)


def _pairs(values: Values, baseline: Values) -> tuple[np.ndarray, np.ndarray]:
    """Paired arrays: by key for mappings (seed -> value), by position for sequences."""
    if isinstance(values, Mapping) and isinstance(baseline, Mapping):
        keys = [k for k in values if k in baseline]
        pairs = [(values[k], baseline[k]) for k in keys]
    else:
        if isinstance(values, Mapping) or isinstance(baseline, Mapping):
            raise ValueError("pair mappings with mappings (seed -> value) or sequences with sequences")
        if len(values) != len(baseline):
            raise ValueError(f"paired values need equal lengths, got {len(values)} and {len(baseline)}")
        pairs = list(zip(values, baseline, strict=True))
    pairs = [(float(a), float(b)) for a, b in pairs if a is not None and b is not None]
    pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
    a = np.asarray([p[0] for p in pairs], dtype=np.float64)
    b = np.asarray([p[1] for p in pairs], dtype=np.float64)
    return a, b


def _verdict(mean: float, p: float, alpha: float, higher_is_better: bool) -> str:
    if math.isnan(p) or p >= alpha or mean == 0:
        return UNDECIDED
    return BETTER if (mean > 0) == higher_is_better else WORSE


def compare_paired(
    values: Values, baseline: Values, higher_is_better: bool = True, confidence: float = 0.95
) -> Comparison:
    """Paired comparison with the baseline over seeds.

    Args:
        values: the configuration's metric per seed (a mapping seed -> value, or a sequence).
        baseline: the baseline's metric per seed, the same keys or length.
        higher_is_better: the metric's sense (AP: True; RMSE: False).
        confidence: of the interval; the tests reject at ``1 - confidence``.
    """
    a, b = _pairs(values, baseline)
    d = a - b
    diff = mean_ci(d, confidence)
    n = len(d)
    if n < 2:
        p = math.nan
    elif float(d.std(ddof=1)) == 0.0:
        # Every seed gave the same difference: certain if non-zero, none if zero.
        p = 1.0 if d[0] == 0 else 0.0
    else:
        p = float(sst.ttest_rel(a, b).pvalue)
    wilcoxon_p = None
    if n >= 6:
        wilcoxon_p = 1.0 if not np.any(d) else float(sst.wilcoxon(a, b).pvalue)
    return Comparison(diff, p, wilcoxon_p, _verdict(diff.mean, p, 1 - confidence, higher_is_better), "paired t")


def _bootstrap(x: np.ndarray, confidence: float, n_boot: int, seed: int) -> tuple[float, float, np.ndarray]:
    """``scipy.stats.bootstrap`` of the mean of ``x`` (BCa interval); returns the interval and the
    resampled means. Constant data has no spread to resample: its interval is the value itself."""
    if not np.any(x - x[0]):
        return float(x[0]), float(x[0]), np.full(n_boot, float(x[0]))
    res = sst.bootstrap(
        (x,), np.mean, confidence_level=confidence, n_resamples=n_boot, method="BCa", random_state=seed, vectorized=True
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high), res.bootstrap_distribution


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Mean and bootstrap interval of ``values`` (e.g. per-image scores of one run): scipy's
    ``bootstrap`` with the bias-corrected and accelerated (BCa) interval, which corrects the
    percentile interval's skew for a mean of skewed per-image scores."""
    x = _finite(values)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if len(x) < 2:
        return Interval(float(x.mean()), math.nan, math.nan, len(x))
    low, high, _ = _bootstrap(x, confidence, n_boot, seed)
    return Interval(float(x.mean()), low, high, len(x))


def compare_bootstrap(
    per_image: Mapping[object, float],
    baseline_per_image: Mapping[object, float],
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Single-seed comparison: the mean per-image difference, resampling the images both runs scored
    (paired: one resample draws the same images for both), with scipy's BCa interval.

    The p-value is the two-sided bootstrap p: twice the smaller share of resampled means on either
    side of zero.
    """
    a, b = _pairs(per_image, baseline_per_image)
    d = a - b
    if len(d) < 2:
        diff, p = bootstrap_ci(d, confidence, n_boot, seed), math.nan
    else:
        low, high, means = _bootstrap(d, confidence, n_boot, seed)
        diff = Interval(float(d.mean()), low, high, len(d))
        if not np.any(d - d[0]):
            p = 1.0 if d[0] == 0 else 0.0
        else:
            p = float(min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0))))
    return Comparison(diff, p, None, _verdict(diff.mean, p, 1 - confidence, higher_is_better), "bootstrap")


def holm(p_values: Mapping[K, float]) -> dict[K, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN ones stay NaN and
    do not count in the family.

    >>> holm({"a": 0.01, "b": 0.04, "c": 0.03})
    {'a': 0.03, 'b': 0.06, 'c': 0.06}
    """
    valid = sorted((p, k) for k, p in p_values.items() if not math.isnan(p))
    m = len(valid)
    out: dict[K, float] = {k: math.nan for k, p in p_values.items() if math.isnan(p)}
    running = 0.0
    for i, (p, k) in enumerate(valid):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return {k: out[k] for k in p_values}


def adjust_holm(
    comparisons: Mapping[K, Comparison | None], higher_is_better: bool = True, confidence: float = 0.95
) -> dict[K, Comparison | None]:
    """The comparisons of one family (every configuration against the baseline on one metric) with
    Holm-adjusted p-values, and verdicts from them (None entries stay None)."""
    adjusted = holm({k: c.p_value for k, c in comparisons.items() if c is not None})
    out: dict[K, Comparison | None] = {}
    for key, cmp in comparisons.items():
        if cmp is None:
            out[key] = None
            continue
        p = adjusted[key]
        verdict = _verdict(cmp.diff.mean, p, 1 - confidence, higher_is_better)
        out[key] = dataclasses.replace(cmp, p_adjusted=p, correction="Holm", verdict=verdict)
    return out
