"""Means with honest intervals: STATS.md §1 reference values and coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from assay.stats import Estimate, clustered_se, estimate_mean, wilson_interval

# STATS.md §1 reference.
SCORES = [1, 1, 1, 0, 0, 0, 1, 0, 1, 1]
CLUSTERS = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]


def test_clustered_se_reference_values() -> None:
    assert clustered_se(SCORES, CLUSTERS, small_sample=False) == pytest.approx(0.2245, abs=5e-5)
    assert clustered_se(SCORES, CLUSTERS) == pytest.approx(0.2750, abs=5e-5)


def test_naive_se_reference_value() -> None:
    # Treating every trial as its own case gives the naive SE, which understates the
    # uncertainty here (0.1633 against 0.2750 clustered).
    est = estimate_mean([[s] for s in SCORES])
    assert est.mean == pytest.approx(0.6)
    assert est.se == pytest.approx(0.1633, abs=5e-5)
    singletons = clustered_se(SCORES, list(range(len(SCORES))))
    assert singletons == pytest.approx(0.1633, abs=5e-5)


def test_clustered_se_accepts_any_cluster_keys_and_checks_lengths() -> None:
    names = ["a" if c == 0 else "b" if c == 1 else "c" for c in CLUSTERS]
    assert clustered_se(SCORES, names) == pytest.approx(clustered_se(SCORES, CLUSTERS))
    with pytest.raises(ValueError, match="same length"):
        clustered_se(SCORES, CLUSTERS[:-1])
    with pytest.raises(ValueError, match="not finite"):
        clustered_se([1.0, math.nan], [0, 1])
    assert clustered_se([1.0, 0.0, 1.0], ["x", "x", "x"]) == math.inf


def test_wilson_known_values_and_scipy_agreement() -> None:
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=5e-5)
    assert wilson_interval(1, 1) == pytest.approx((0.2065, 1.0), abs=5e-5)
    for x, n, level in [(3, 17, 0.95), (40, 50, 0.9), (199, 200, 0.99)]:
        ci = binomtest(x, n).proportion_ci(confidence_level=level, method="wilson")
        assert wilson_interval(x, n, level) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="between 0 and n=10"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="positive whole number"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="level"):
        wilson_interval(1, 10, level=95)


def test_each_case_weighs_the_same_however_many_trials() -> None:
    est = estimate_mean([[1.0] * 10, [0.0]])
    assert est.mean == pytest.approx(0.5)
    assert est.n_cases == 2 and est.n_trials == 11


def test_t_interval_by_hand() -> None:
    est = estimate_mean({"a": [0.2, 0.4], "b": [0.5], "c": [0.8, 0.6, 0.7]})
    means = [0.3, 0.5, 0.7]
    se = float(np.std(means, ddof=1)) / math.sqrt(3)
    half = 4.302652729911275 * se  # t_{0.975, 2}
    assert est.method == "t"
    assert (est.mean, est.se) == pytest.approx((0.5, se))
    assert (est.low, est.high) == pytest.approx((0.5 - half, 0.5 + half))


def test_wilson_for_decided_pass_fail_cases() -> None:
    est = estimate_mean([[1, 1, 1]] * 45 + [[0, 0, 0]] * 5)
    assert est.method == "wilson"
    assert (est.low, est.high) == pytest.approx(wilson_interval(45, 50))


def test_wilson_for_small_n_near_the_edge_but_t_in_the_middle() -> None:
    flaky_rare = [[0, 0]] * 18 + [[1, 0], [1, 1]]  # mean 0.075 over 20 cases
    assert estimate_mean(flaky_rare).method == "wilson"
    flaky_middle = [[1, 0], [1, 1], [0, 0]] * 6  # mean 0.5 over 18 cases
    assert estimate_mean(flaky_middle).method == "t"


def test_all_pass_gives_an_interval_below_one_not_a_point() -> None:
    est = estimate_mean([[1, 1]] * 20)
    assert est.method == "wilson" and est.se == 0.0
    assert est.high == 1.0 and 0.8 < est.low < 0.9


def test_single_case_is_defined() -> None:
    cont = estimate_mean([[0.3, 0.5]])
    assert cont == Estimate(0.4, math.inf, -math.inf, math.inf, 0.95, 1, 2, "undefined")
    binary = estimate_mean([[1]])
    assert binary.method == "wilson"
    assert (binary.low, binary.high) == pytest.approx(wilson_interval(1, 1))


def test_constant_continuous_scores_give_a_zero_width_interval() -> None:
    est = estimate_mean([[0.7], [0.7], [0.7]])
    assert (est.se, est.method) == (0.0, "t")
    assert est.low == est.high == est.mean == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([], "no cases"),
        ([[1.0], []], "no trial scores"),
        ([[1.0], [float("inf")]], r"\[1\]\[0\].*not finite"),
        ({"q1": [0.5, "x"]}, r"'q1'\]\[1\].*not a number"),
        ("abc", "string"),
    ],
)
def test_bad_input_is_named(bad: object, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        estimate_mean(bad)  # type: ignore[arg-type]


def test_coverage_with_repeated_trials_and_heterogeneous_cases() -> None:
    # Case pass probabilities vary (Beta(2, 3), mean 0.4); each case runs K = 5 trials.
    rng = np.random.default_rng(20240611)
    reps, n, k = 2000, 100, 5
    p = rng.beta(2.0, 3.0, size=(reps, n))
    passes = rng.binomial(k, p)
    trials = (np.arange(k) < passes[..., None]).astype(float)  # (reps, n, k) 0/1 trials
    hits = 0
    for r in range(reps):
        est = estimate_mean(trials[r])  # type: ignore[arg-type]
        assert est.method == "t"
        hits += est.low <= 0.4 <= est.high
    assert 0.93 <= hits / reps <= 0.97


def test_wilson_keeps_coverage_where_the_t_interval_fails() -> None:
    # Exact coverage over the binomial distribution of 20 decided cases.
    n = 20
    for p in (0.05, 0.1, 0.9):
        wilson = t = 0.0
        for x in range(n + 1):
            cases = [[1.0]] * x + [[0.0]] * (n - x)
            est = estimate_mean(cases)
            wilson += binom.pmf(x, n, p) * (est.low <= p <= est.high)
            mean, se = x / n, math.sqrt(x / n * (1 - x / n) / (n - 1))
            t += binom.pmf(x, n, p) * (abs(mean - p) <= 2.093 * se)
        assert wilson >= 0.92
        assert wilson - t > 0.05
