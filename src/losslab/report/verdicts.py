"""Verdicts that use every run: a pooled test over the study's config x seed layout, equivalence
within a stated margin, and the smallest difference the design could detect.

Every configuration of a study trains on the same seeds (the same data order and initialisation), so
the seeds are blocks shared by all configurations. The two-way layout ``y[c, s] = mu + a[c] + b[s] + e``
(no interaction) pools the residual variance over every configuration that takes part: with 9
configurations and 3 seeds the difference ``c - baseline`` is tested with ``(9 - 1) x (3 - 1) = 16``
degrees of freedom instead of the paired t-test's 2, so one lucky trio of nearly equal differences no
longer makes a razor-thin interval. This is the OLS fit ``y ~ C(config) + C(seed)`` (tests check it
against statsmodels).

Pooling is not valid for every configuration: a collapsed one (its AP is 0 at every seed, so it has no
seed-to-seed spread of its own), one that misses some of the shared seeds, or a layout whose residual
variances differ between configurations (Bartlett's test, ``POOL_HOMOGENEITY_P``). Those comparisons
keep the paired t-test over their own seeds; ``Comparison.method`` says which test gave each verdict.

Three outcomes:

- ``better`` / ``worse``: the difference's interval excludes zero (two-sided test, Holm-adjusted p
  below ``alpha``);
- ``equivalent``: within ``±margin`` by two one-sided tests (TOST, Holm-adjusted over the same family);
- ``undecided``: neither.

``mde`` is the smallest difference the test would detect with power 0.8 (noncentral t) at the
Bonferroni level ``alpha / m`` (what Holm asks of the first of m comparisons): the honest size of "no
difference seen".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as sst
from scipy.optimize import brentq

from losslab.report.stats import (
    BETTER,
    EQUIVALENT,
    UNDECIDED,
    WORSE,
    Comparison,
    Interval,
    compare_paired,
    holm,
)
from losslab.study.spec import DEFAULT_MARGIN

__all__ = [
    "DEFAULT_MARGIN",
    "POOL_HOMOGENEITY_P",
    "POWER",
    "PooledLayout",
    "classify",
    "compare_family",
    "minimum_detectable",
    "pooled_layout",
    "tost_p",
]

#: The equivalence margin (metric points, e.g. AP) of a study that does not state one.
#: The power at which ``mde`` is stated.
POWER = 0.8
#: Bartlett's test on the configurations' residuals below this p: the variances differ, no pooling.
POOL_HOMOGENEITY_P = 0.01
#: The degrees of freedom given to a bootstrap interval (a normal approximation).
_LARGE_DF = 1e9


@dataclasses.dataclass(frozen=True)
class PooledLayout:
    """The two-way fit of the pooled configurations.

    Attributes:
        configs: the configurations pooled, in the order given.
        seeds: the seeds every one of them has (the blocks).
        sigma2: the residual variance (mean square error of the two-way fit).
        df: its degrees of freedom, ``(len(configs) - 1) * (len(seeds) - 1)``.
        homogeneity_p: Bartlett's p for equal residual variances across the configurations (NaN when
            it cannot be computed).
    """

    configs: tuple[str, ...]
    seeds: tuple[int, ...]
    sigma2: float
    df: int
    homogeneity_p: float


def pooled_layout(values: Mapping[str, Mapping[int, float]], configs: Sequence[str]) -> PooledLayout | None:
    """Fit ``y ~ config + seed`` on ``configs`` over the seeds most of them have.

    Args:
        values: ``{config: {seed: value}}``.
        configs: the configurations to pool (others in ``values`` are ignored); one that misses a seed
            most of them have (an unfinished or failed run) stays out of the pool.

    Returns:
        The layout, or None when it has no residual degrees of freedom (fewer than 3 configurations or
        2 shared seeds) or no residual variance (every difference identical: nothing to pool).
    """
    sets = [frozenset(values[c]) for c in configs if values.get(c)]
    if not sets:
        return None
    common = max(set(sets), key=lambda s: (sets.count(s), len(s), sorted(s)))
    configs = [c for c in configs if values.get(c) and common <= set(values[c])]
    seeds = sorted(common)
    if len(configs) < 3 or len(seeds) < 2:
        return None
    y = np.asarray([[float(values[c][s]) for s in seeds] for c in configs], dtype=np.float64)
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    df = (len(configs) - 1) * (len(seeds) - 1)
    sigma2 = float((resid**2).sum()) / df
    if not math.isfinite(sigma2) or sigma2 <= 1e-12:
        return None
    homogeneity = math.nan
    rows = [r for r in resid if float(np.var(r)) > 0]
    if len(rows) >= 2:
        homogeneity = float(sst.bartlett(*rows).pvalue)
    return PooledLayout(tuple(configs), tuple(seeds), sigma2, df, homogeneity)


def tost_p(diff: float, se: float, df: float, margin: float) -> float:
    """The two-one-sided-tests p of ``|true difference| < margin`` (the larger of the two one-sided p)."""
    if not (se > 0 and math.isfinite(se)) or margin <= 0:
        return 1.0 if margin <= 0 or abs(diff) >= margin else 0.0
    p_low = float(sst.t.sf((diff + margin) / se, df))  # H0: diff <= -margin
    p_high = float(sst.t.cdf((diff - margin) / se, df))  # H0: diff >= +margin
    return max(p_low, p_high)


def minimum_detectable(se: float, df: float, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest true difference that a two-sided t-test at ``alpha`` (a difference with standard
    error ``se`` and ``df`` degrees of freedom) detects with ``power``: ``nc * se`` where the
    noncentral t with noncentrality ``nc`` exceeds the critical value with that probability."""
    if not (se > 0 and math.isfinite(se)) or not df >= 1:
        return math.nan
    normal = df > _LARGE_DF / 10  # a bootstrap's interval: the normal limit
    crit = float(sst.norm.ppf(1 - alpha / 2) if normal else sst.t.ppf(1 - alpha / 2, df))

    def shortfall(nc: float) -> float:
        if normal:
            return float(sst.norm.sf(crit - nc) + sst.norm.cdf(-crit - nc)) - power
        lower = float(sst.nct.cdf(-crit, df, nc))  # the far tail: negligible, NaN for a large nc
        return float(sst.nct.sf(crit, df, nc)) + (lower if math.isfinite(lower) else 0.0) - power

    high = 2 * (crit + float(sst.norm.ppf(power))) + 1
    while shortfall(high) < 0:
        high *= 2
    return float(brentq(shortfall, 0.0, high, xtol=1e-10)) * se


def _pooled(a: Mapping[int, float], b: Mapping[int, float], layout: PooledLayout, confidence: float) -> Comparison:
    d = np.asarray([float(a[s]) - float(b[s]) for s in layout.seeds])
    n = len(d)
    se = math.sqrt(2 * layout.sigma2 / n)
    mean = float(d.mean())
    half = float(sst.t.ppf((1 + confidence) / 2, layout.df)) * se
    p = float(2 * sst.t.sf(abs(mean) / se, layout.df))
    method = f"pooled t (config x seed, {len(layout.configs)} configurations, df={layout.df})"
    return Comparison(Interval(mean, mean - half, mean + half, n), p, None, UNDECIDED, method, se=se, df=layout.df)


def _paired(a: Mapping[int, float], b: Mapping[int, float], confidence: float) -> Comparison | None:
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    cmp = compare_paired({s: a[s] for s in common}, {s: b[s] for s in common}, confidence=confidence)
    n = len(common)
    sd = float(np.std([a[s] - b[s] for s in common], ddof=1))
    return dataclasses.replace(cmp, method=f"paired t (df={n - 1})", se=sd / math.sqrt(n), df=n - 1)


def classify(cmp: Comparison, p_adjusted: float, p_equivalence: float, alpha: float, higher_is_better: bool) -> str:
    """``better`` / ``worse`` when the corrected difference test rejects, ``equivalent`` when the
    corrected TOST does, else ``undecided``."""
    mean = cmp.diff.mean
    if math.isfinite(p_adjusted) and p_adjusted < alpha and mean != 0:
        return BETTER if (mean > 0) == higher_is_better else WORSE
    if math.isfinite(p_equivalence) and p_equivalence < alpha:
        return EQUIVALENT
    return UNDECIDED


def compare_family(
    values: Mapping[str, Mapping[int, float]],
    baselines: Mapping[str, str | None],
    exclude: Sequence[str] = (),
    higher_is_better: bool = True,
    margin: float = DEFAULT_MARGIN,
    confidence: float = 0.95,
    extra: Mapping[str, Comparison | None] | None = None,
) -> dict[str, Comparison | None]:
    """Every configuration against its baseline on one metric, as one family.

    Args:
        values: ``{config: {seed: value}}`` of every configuration (verdict runs only).
        baselines: ``{config: its baseline's label}``; None for the baseline itself (no comparison).
        exclude: configurations kept out of the pool (collapsed ones): they get the paired t-test.
        higher_is_better: the metric's sense.
        margin: the equivalence margin, in the metric's units.
        confidence: of the intervals; the tests reject at ``1 - confidence`` after Holm's correction.
        extra: comparisons made elsewhere (a one-seed bootstrap over images) for configurations that
            have no test over seeds here; they join the family's correction.

    Returns:
        ``{config: Comparison}`` with ``p_adjusted``, ``p_equivalence``, ``mde``, ``margin`` and the
        verdict; None where there is nothing to compare (no baseline, fewer than 2 seeds).
    """
    alpha = 1 - confidence
    pool = [c for c in values if c not in set(exclude)]
    layout = pooled_layout(values, pool)
    if layout is not None and math.isfinite(layout.homogeneity_p) and layout.homogeneity_p < POOL_HOMOGENEITY_P:
        layout = None
    raw: dict[str, Comparison | None] = {}
    for label, base in baselines.items():
        if base is None or label not in values or base not in values:
            raw[label] = None
            continue
        a, b = values[label], values[base]
        pooled = layout is not None and label in layout.configs and base in layout.configs
        raw[label] = _pooled(a, b, layout, confidence) if pooled else _paired(a, b, confidence)
    for label, cmp in (extra or {}).items():
        if raw.get(label) is None and cmp is not None:
            half = cmp.diff.half_width
            se = half / float(sst.norm.ppf((1 + confidence) / 2)) if math.isfinite(half) else math.nan
            raw[label] = dataclasses.replace(cmp, se=se, df=_LARGE_DF)
    tested = {k: c for k, c in raw.items() if c is not None}
    p_diff = holm({k: c.p_value for k, c in tested.items()})
    p_eq = holm({k: tost_p(c.diff.mean, c.se, c.df, margin) for k, c in tested.items()})
    m = max(1, sum(1 for p in p_diff.values() if not math.isnan(p)))
    out: dict[str, Comparison | None] = {}
    for label, cmp in raw.items():
        if cmp is None:
            out[label] = None
            continue
        verdict = classify(cmp, p_diff[label], p_eq[label], alpha, higher_is_better)
        out[label] = dataclasses.replace(
            cmp,
            p_adjusted=p_diff[label],
            p_equivalence=p_eq[label],
            correction="Holm",
            verdict=verdict,
            margin=margin,
            mde=minimum_detectable(cmp.se, cmp.df, alpha / m),
        )
    return out
