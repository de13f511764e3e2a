"""Statistics on hand-made numbers, checked against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from losslab.report.stats import (
    BETTER,
    UNDECIDED,
    WORSE,
    adjust_holm,
    bootstrap_ci,
    compare_bootstrap,
    compare_paired,
    holm,
    mean_ci,
)


def test_mean_ci_matches_scipy_t_interval():
    x = [83.6, 80.5, 81.4, 79.0]
    iv = mean_ci(x)
    low, high = sst.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sst.sem(x))
    assert iv.mean == pytest.approx(np.mean(x))
    assert (iv.low, iv.high) == pytest.approx((low, high))
    assert iv.n == 4 and iv.half_width == pytest.approx((high - low) / 2)


def test_mean_ci_hand_computed():
    # mean 2, sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    iv = mean_ci([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.half_width == pytest.approx(2.484138, abs=1e-6)


def test_mean_ci_edge_cases():
    assert math.isnan(mean_ci([]).mean) and mean_ci([]).n == 0
    one = mean_ci([5.0])
    assert one.mean == 5.0 and math.isnan(one.low) and math.isnan(one.half_width)
    assert mean_ci([1.0, None, float("nan"), 3.0]).n == 2


def test_paired_comparison_matches_scipy():
    a = {0: 84.4, 1: 83.1, 2: 85.0, 3: 84.2}
    b = {0: 83.6, 1: 82.0, 2: 84.1, 3: 83.0}
    cmp = compare_paired(a, b)
    d = np.array([a[s] - b[s] for s in a])
    assert cmp.diff.mean == pytest.approx(d.mean())
    assert cmp.p_value == pytest.approx(sst.ttest_rel(list(a.values()), list(b.values())).pvalue)
    low, high = sst.t.interval(0.95, 3, loc=d.mean(), scale=sst.sem(d))
    assert (cmp.diff.low, cmp.diff.high) == pytest.approx((low, high))
    assert cmp.verdict == BETTER and cmp.wilcoxon_p is None and cmp.method == "paired t"


def test_paired_pairs_by_seed_not_by_position():
    cmp = compare_paired({0: 1.0, 1: 2.0, 2: 3.0}, {2: 3.0, 1: 2.0, 0: 1.0})
    assert cmp.diff.mean == 0.0 and cmp.verdict == UNDECIDED and cmp.p_value == 1.0


def test_worse_and_no_evidence():
    assert compare_paired([70.0, 71.0, 69.5], [80.0, 80.5, 79.0]).verdict == WORSE
    noisy = compare_paired([80.0, 75.0, 85.0], [79.0, 82.0, 78.0])
    assert noisy.verdict == UNDECIDED and noisy.diff.low < 0 < noisy.diff.high
    # lower is better (an error): a lower value is "better"
    assert compare_paired([1.0, 1.1, 0.9], [2.0, 2.1, 2.05], higher_is_better=False).verdict == BETTER


def test_wilcoxon_from_six_pairs():
    a = [81.0, 82.5, 80.2, 83.1, 81.7, 82.2]
    b = [80.1, 81.0, 80.0, 81.9, 80.3, 81.0]
    cmp = compare_paired(a, b)
    assert cmp.wilcoxon_p == pytest.approx(sst.wilcoxon(a, b).pvalue)


def test_single_seed_has_no_verdict():
    cmp = compare_paired([80.0], [79.0])
    assert cmp.verdict == UNDECIDED and math.isnan(cmp.p_value) and cmp.diff.mean == 1.0


def test_constant_difference_is_certain():
    assert compare_paired([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]).verdict == BETTER


def test_bootstrap_ci_is_scipys_bca_interval():
    rng = np.random.default_rng(0)
    x = rng.lognormal(0.0, 1.0, size=60)  # skewed, like per-image AP: BCa and percentile differ
    iv = bootstrap_ci(x, n_boot=4000, seed=1)
    ref = sst.bootstrap((x,), np.mean, confidence_level=0.95, method="BCa", n_resamples=4000, random_state=1)
    assert iv.mean == pytest.approx(x.mean())
    assert (iv.low, iv.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    pct = sst.bootstrap((x,), np.mean, method="percentile", n_resamples=4000, random_state=1).confidence_interval
    assert iv.high > pct.high  # the right skew moves BCa's interval up
    constant = bootstrap_ci([0.5] * 10)
    assert (constant.low, constant.high) == (0.5, 0.5)


def test_holm_equals_statsmodels_on_random_families():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 12):
        for _ in range(20):
            raw = rng.uniform(0, 0.2, size=m) ** rng.uniform(0.5, 3)
            ours = holm(dict(enumerate(raw)))
            assert [ours[i] for i in range(m)] == pytest.approx(list(multipletests(raw, method="holm")[1]))


def test_bootstrap_comparison_pairs_images():
    base = {str(i): 0.5 + 0.01 * i for i in range(30)}
    better = {k: v + 0.05 for k, v in base.items()}
    cmp = compare_bootstrap(better, base)
    assert cmp.verdict == BETTER and cmp.diff.mean == pytest.approx(0.05) and cmp.method == "bootstrap"
    rng = np.random.default_rng(3)
    noise = {k: v + rng.normal(0, 0.05) for k, v in base.items()}
    shuffled = compare_bootstrap(noise, base)
    assert shuffled.diff.low < shuffled.diff.mean < shuffled.diff.high


def test_describe_reads_well():
    text = compare_paired([84.0, 85.0, 86.0], [80.0, 80.5, 81.0]).describe()
    assert text.startswith("+4.50 [") and text.endswith(": better")


def test_mismatched_inputs_raise():
    with pytest.raises(ValueError, match="equal lengths"):
        compare_paired([1.0, 2.0], [1.0])


def test_holm_hand_computed():
    # sorted p: 0.01 (x3) = 0.03, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> monotone: 0.06
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    assert holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}  # capped at 1
    nan = holm({"a": float("nan"), "b": 0.02})
    assert math.isnan(nan["a"]) and nan["b"] == pytest.approx(0.02)  # a NaN is not in the family
    assert holm({}) == {}


def test_holm_turns_a_lone_win_among_many_into_no_evidence():
    base = {0: 80.0, 1: 80.5, 2: 79.0}
    wins = {"A": compare_paired({0: 81.0, 1: 81.9, 2: 79.8}, base)}  # p = 0.026 alone
    wins.update({f"N{i}": compare_paired({0: 80.0 + i, 1: 79.0, 2: 80.0}, base) for i in range(4)})
    assert wins["A"].verdict == BETTER and wins["A"].p_value < 0.05
    adjusted = adjust_holm({**wins, "missing": None})
    assert adjusted["missing"] is None
    assert adjusted["A"].verdict == UNDECIDED and adjusted["A"].p_adjusted == pytest.approx(5 * wins["A"].p_value)
    assert adjusted["A"].correction == "Holm" and "Holm p=" in adjusted["A"].describe()
    strong = adjust_holm({"W": compare_paired([70.0, 71.0, 69.5], [80.0, 80.5, 79.0])})
    assert strong["W"].verdict == WORSE  # a family of one: Holm changes nothing
