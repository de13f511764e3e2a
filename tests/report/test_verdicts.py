"""The pooled verdicts against independent code: the two-way OLS fit and Holm of statsmodels, its
paired TOST and t-test power; and the three outcomes (better / worse, equivalent, undecided)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from losslab.report.stats import BETTER, EQUIVALENT, UNDECIDED, WORSE
from losslab.report.verdicts import compare_family, minimum_detectable, pooled_layout, tost_p

sm = pytest.importorskip("statsmodels.formula.api")
pd = pytest.importorskip("pandas")

# Nine configurations x three seeds with a shared seed effect: the shape of `quick`.
_RNG = np.random.default_rng(7)
_SEED_EFFECT = [2.0, -1.5, 0.4]
_TRUE = {"BCE": 35.0, "A": 35.5, "B": 31.0, "C": 34.0, "D": 36.0, "E": 35.2, "F": 33.0, "G": 35.1, "H": 34.7}
VALUES = {c: {s: m + _SEED_EFFECT[s] + float(_RNG.normal(0, 1.0)) for s in range(3)} for c, m in _TRUE.items()}
BASELINES = {c: (None if c == "BCE" else "BCE") for c in VALUES}


def _ols():
    rows = [(c, s, v) for c, seeds in VALUES.items() for s, v in seeds.items()]
    frame = pd.DataFrame(rows, columns=["config", "seed", "ap"])
    return sm.ols("ap ~ C(config, Treatment('BCE')) + C(seed)", data=frame).fit()


def test_the_pooled_fit_is_the_two_way_ols():
    fit = _ols()
    layout = pooled_layout(VALUES, list(VALUES))
    assert layout.df == fit.df_resid == 16
    assert layout.sigma2 == pytest.approx(fit.mse_resid, rel=1e-10)
    family = compare_family(VALUES, BASELINES)
    for config in VALUES:
        if config == "BCE":
            assert family[config] is None
            continue
        name = f"C(config, Treatment('BCE'))[T.{config}]"
        cmp = family[config]
        assert cmp.method.startswith("pooled t") and cmp.df == 16
        assert cmp.diff.mean == pytest.approx(fit.params[name], abs=1e-9)
        assert cmp.se == pytest.approx(fit.bse[name], rel=1e-9)
        assert cmp.p_value == pytest.approx(fit.pvalues[name], rel=1e-7)
        low, high = fit.conf_int().loc[name]
        assert (cmp.diff.low, cmp.diff.high) == pytest.approx((low, high), rel=1e-9)


def test_holm_and_the_verdicts_follow_statsmodels():
    from statsmodels.stats.multitest import multipletests

    fit = _ols()
    family = compare_family(VALUES, BASELINES, margin=2.0)
    configs = [c for c in VALUES if c != "BCE"]
    raw = [fit.pvalues[f"C(config, Treatment('BCE'))[T.{c}]"] for c in configs]
    reject, adjusted, _, _ = multipletests(raw, alpha=0.05, method="holm")
    for config, p, rejected in zip(configs, adjusted, reject, strict=True):
        cmp = family[config]
        assert cmp.p_adjusted == pytest.approx(p, rel=1e-7)
        assert (cmp.verdict in (BETTER, WORSE)) == bool(rejected)
    assert family["B"].verdict == WORSE  # 4 points below, pooled over 16 degrees of freedom


def test_tost_matches_statsmodels_paired_tost():
    from statsmodels.stats.weightstats import ttost_paired

    a = np.array([35.1, 33.9, 36.2, 34.8, 35.5])
    b = np.array([34.6, 34.4, 35.1, 35.0, 34.7])
    d = a - b
    se = d.std(ddof=1) / math.sqrt(len(d))
    for margin in (0.5, 1.0, 2.0):
        expected = ttost_paired(a, b, -margin, margin)[0]
        assert tost_p(float(d.mean()), float(se), len(d) - 1, margin) == pytest.approx(expected, rel=1e-9)


def test_minimum_detectable_difference_matches_statsmodels_power():
    from statsmodels.stats.power import TTestPower

    for n, alpha in ((3, 0.05), (5, 0.05 / 8), (10, 0.05)):
        sd = 1.7
        mde = minimum_detectable(sd / math.sqrt(n), n - 1, alpha)
        power = TTestPower().power(effect_size=mde / sd, nobs=n, alpha=alpha, alternative="two-sided")
        assert power == pytest.approx(0.8, abs=1e-6)
    assert math.isnan(minimum_detectable(0.0, 5)) and math.isnan(minimum_detectable(1.0, 0))


def test_three_outcomes():
    rng = np.random.default_rng(3)
    base = {s: 35.0 + s + float(rng.normal(0, 0.3)) for s in range(6)}
    values = {
        "BCE": base,
        "Same": {s: v + float(rng.normal(0, 0.3)) for s, v in base.items()},
        "Worse": {s: v - 5.0 + float(rng.normal(0, 0.3)) for s, v in base.items()},
        "Also": {s: v + 0.2 + float(rng.normal(0, 0.3)) for s, v in base.items()},
    }
    baselines = {c: None if c == "BCE" else "BCE" for c in values}
    family = compare_family(values, baselines, margin=2.0)
    assert {c.method.split(" (")[0] for c in family.values() if c} == {"pooled t"}
    assert family["Same"].verdict == EQUIVALENT and family["Same"].p_equivalence < 0.05
    assert family["Worse"].verdict == WORSE and family["Worse"].p_adjusted < 0.05
    # a margin inside the noise cannot show equivalence: undecided
    assert compare_family(values, baselines, margin=0.05)["Same"].verdict == UNDECIDED
    higher = compare_family(values, baselines, higher_is_better=False)
    assert higher["Worse"].verdict == BETTER  # an error metric: lower is better


def test_collapsed_configurations_and_unequal_variances_are_not_pooled():
    family = compare_family(VALUES, BASELINES, exclude=["B"])
    assert family["B"].method == "paired t (df=2)" and family["A"].method.startswith("pooled t (config x seed, 8")
    wild = {**VALUES, "W": {0: 0.0, 1: 90.0, 2: 10.0}}  # a variance no pool can share
    family = compare_family(wild, {**BASELINES, "W": "BCE"})
    assert all(c.method.startswith("paired t") for c in family.values() if c is not None)
    two = {c: VALUES[c] for c in ("BCE", "A")}
    assert compare_family(two, {"BCE": None, "A": "BCE"})["A"].method == "paired t (df=2)"


def test_the_mde_is_stated_at_the_corrected_level():
    family = compare_family(VALUES, BASELINES)
    cmp = family["A"]
    assert cmp.mde == pytest.approx(minimum_detectable(cmp.se, 16, 0.05 / 8), rel=1e-12)
    paired = compare_family(VALUES, BASELINES, exclude=list(VALUES))["A"]
    assert paired.df == 2 and paired.mde == pytest.approx(minimum_detectable(paired.se, 2, 0.05 / 8), rel=1e-12)


def test_a_configuration_missing_a_seed_stays_out_of_the_pool():
    unfinished = {**VALUES, "A": {0: VALUES["A"][0], 1: VALUES["A"][1]}}  # seed 2 not done (yet)
    family = compare_family(unfinished, BASELINES)
    assert family["A"].method == "paired t (df=1)"
    assert family["B"].method.startswith("pooled t (config x seed, 8 configurations") and family["B"].df == 14
