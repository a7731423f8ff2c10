"""Numeric and categorical drift detectors, the result contract and multiplicity correction.

Known values: KS and chi-square against scipy, PSI and JS against hand-computed examples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from assay.drift import (
    DEFAULT_TESTS,
    MISSING,
    OTHER,
    DriftResult,
    DriftTest,
    category_shifts,
    chi2_test,
    classifier_test,
    correct,
    js_test,
    ks_per_dim_test,
    ks_test,
    mmd_test,
    psi_test,
    wasserstein_test,
)
from assay.drift.detectors import js_distance, merge_rare, psi_bins, psi_value
from assay.stats import benjamini_hochberg

ALL_TESTS = [
    ks_test,
    wasserstein_test,
    psi_test,
    chi2_test,
    js_test,
    mmd_test,
    classifier_test,
    ks_per_dim_test,
]


def result(p: float | None, *, drifted: bool | None = None, note: str | None = None) -> DriftResult:
    return DriftResult("f", "t", 0.0, p, 0.0, "e", 100, 100, drifted=drifted, note=note)


# ------------------------------------------------------------------ contract


def test_every_builtin_is_a_drift_test_and_its_own_factory() -> None:
    for t in ALL_TESTS:
        assert isinstance(t, DriftTest)
        assert t.kind in ("numeric", "categorical", "embedding")
        changed = t(min_samples=7)
        assert changed.min_samples == 7 and changed.name == t.name
        assert t.min_samples != 7  # the original is untouched
    names = {t.name for t in ALL_TESTS}
    assert names == {
        "ks",
        "wasserstein",
        "psi",
        "chi2",
        "jensen_shannon",
        "mmd",
        "classifier",
        "ks_per_dim",
    }


def test_unknown_option_names_the_options() -> None:
    with pytest.raises(TypeError, match=r"n_permutation.*options are"):
        mmd_test(n_permutation=500)


def test_default_tests_cover_every_kind_with_matching_tests() -> None:
    assert set(DEFAULT_TESTS) == {"numeric", "categorical", "embedding"}
    for kind, tests in DEFAULT_TESTS.items():
        assert tests
        assert all(t.kind == kind for t in tests)
    # Each kind leads with a test that has a p-value, so correct() has a family.
    assert {k: [t.name for t in v] for k, v in DEFAULT_TESTS.items()} == {
        "numeric": ["ks", "wasserstein"],
        "categorical": ["chi2", "jensen_shannon"],
        "embedding": ["mmd", "classifier"],
    }


# ------------------------------------------------------------------ KS


@pytest.mark.parametrize(("m", "n"), [(40, 55), (500, 300), (2000, 2000)])
def test_ks_matches_scipy_exact(m: int, n: int) -> None:
    rng = np.random.default_rng(m)
    x, y = rng.normal(size=m), rng.normal(0.15, 1.1, size=n)
    r = ks_test.run("latency_ms", x, y)
    ref = stats.ks_2samp(x, y, method="exact")
    assert r.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert r.effect == r.statistic
    assert r.effect_name == "KS D"
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.drifted is bool(ref.pvalue <= 0.05)
    assert (r.n_reference, r.n_current) == (m, n)


def test_ks_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 20, 300).astype(float)
    y = rng.integers(2, 22, 250).astype(float)
    r = ks_test.run("tokens", x, y)
    ref = stats.ks_2samp(x, y, method="exact")
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.details["current_shift"] == "higher"


def test_ks_large_windows_use_kolmogorov_limit_close_to_scipy() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=12_000), rng.normal(0.03, size=15_000)
    r = ks_test.run("cost", x, y)
    ref = stats.ks_2samp(x, y, method="asymp")
    assert r.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=0.03)
    assert r.details["p_method"].startswith("asymptotic")


def test_ks_drops_nan_and_inf_and_counts_them() -> None:
    x = [1.0, 2.0, None, math.nan, 3.0, math.inf, *range(40)]
    y = list(range(5, 45))
    r = ks_test.run("latency_ms", x, y)
    assert r.n_reference == 43
    assert r.details["dropped_non_finite"] == {"reference": 3, "current": 0}


def test_window_below_minimum_gives_no_verdict_and_says_how_many() -> None:
    r = ks_test.run("latency_ms", np.arange(500.0), np.arange(12.0))
    assert r.drifted is None and r.p_value is None
    assert r.note is not None
    assert "need ≥ 30 values per window" in r.note
    assert "12 in current" in r.note and "500 in reference" in r.note
    assert 0 < r.statistic <= 1  # the statistic is still shown


@pytest.mark.parametrize("bad", [["a", "b"], [[1.0, 2.0], [3.0, 4.0]]])
def test_numeric_input_errors_name_the_problem(bad: object) -> None:
    with pytest.raises(ValueError, match="reference"):
        ks_test.run("x", bad, [1.0, 2.0])


# ------------------------------------------------------------------ Wasserstein


def test_wasserstein_effect_is_distance_over_reference_iqr() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=3000)
    y = x[:2000] + 0.5
    r = wasserstein_test.run("latency_ms", x, y)
    w = stats.wasserstein_distance(x, y)
    q1, q3 = np.quantile(x, [0.25, 0.75])
    assert r.statistic == pytest.approx(w)
    assert r.effect == pytest.approx(w / (q3 - q1))
    assert r.effect_name == "Wasserstein / ref IQR"
    assert r.p_value is None
    assert r.drifted is True  # 0.5 sd ≈ 0.37 IQR ≥ 0.2


def test_wasserstein_small_shift_is_not_drift_at_the_threshold() -> None:
    rng = np.random.default_rng(6)
    r = wasserstein_test.run("x", rng.normal(size=5000), rng.normal(0.05, size=5000))
    assert r.drifted is False and r.effect < 0.2


def test_wasserstein_stays_silent_while_noise_could_cross_the_threshold() -> None:
    rng = np.random.default_rng(7)
    r = wasserstein_test.run("x", rng.lognormal(size=60), rng.lognormal(size=60))
    assert r.drifted is None
    assert r.note is not None and "sampling noise" in r.note
    need = int(r.note.split("need ≥ ")[1].split(" ")[0].replace(",", ""))
    assert need > 60
    assert r.details["noise_floor"] >= 0.2


def test_wasserstein_falls_back_to_sd_when_iqr_is_zero() -> None:
    x = np.array([0.0] * 90 + [1.0] * 10 + [5.0] * 10)
    y = np.array([0.0] * 60 + [1.0] * 50)
    r = wasserstein_test(min_samples=10).run("retries", x, y)
    assert r.effect_name == "Wasserstein / ref sd"
    assert r.effect == pytest.approx(stats.wasserstein_distance(x, y) / np.std(x, ddof=1))


# ------------------------------------------------------------------ PSI


def test_psi_hand_computed_example() -> None:
    ref = np.arange(1.0, 9.0)
    cur = np.array([1, 1, 1, 1, 3, 5, 7, 8], dtype=float)
    edges = psi_bins(ref, 4)
    assert edges.tolist() == [2.75, 4.5, 6.25]
    psi, p, q = psi_value(ref, cur, edges)
    # Half a count added per bin: p = 2.5/10 each; q = (4.5, 1.5, 1.5, 2.5)/10.
    assert p.tolist() == pytest.approx([0.25] * 4)
    assert q.tolist() == pytest.approx([0.45, 0.15, 0.15, 0.25])
    expected = 0.2 * math.log(0.45 / 0.25) + 2 * (-0.1) * math.log(0.15 / 0.25)
    assert psi == pytest.approx(expected)
    assert psi == pytest.approx(0.2197224577)
    r = psi_test(n_bins=4).run("x", ref, cur)
    assert r.statistic == pytest.approx(expected)
    assert r.drifted is None and r.note is not None  # 8 values: far too few


def test_psi_flags_a_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(8)
    ref = rng.lognormal(5, 1, 5000)
    assert psi_test.run("len", ref, rng.lognormal(5, 1, 5000)).drifted is False
    shifted = psi_test.run("len", ref, rng.lognormal(5.5, 1, 5000))
    assert shifted.drifted is True and shifted.effect_name == "PSI"
    assert len(shifted.details["bins"]) == 10
    assert shifted.details["bins"][-1]["upper"] == math.inf


def test_psi_ties_merge_bins() -> None:
    ref = np.array([1.0] * 500 + [2.0] * 500)
    edges = psi_bins(ref, 10)
    assert edges.tolist() == [1.0, 1.5, 2.0]


# ------------------------------------------------------------------ chi-square and JS


def test_chi2_matches_scipy_without_merging() -> None:
    rng = np.random.default_rng(9)
    a = rng.choice(["gpt-4o", "gpt-4o-mini", "claude"], 400, p=[0.5, 0.3, 0.2]).tolist()
    b = rng.choice(["gpt-4o", "gpt-4o-mini", "claude"], 300, p=[0.4, 0.4, 0.2]).tolist()
    r = chi2_test.run("model", a, b)
    table = np.array([[a.count(c) for c in ("claude", "gpt-4o", "gpt-4o-mini")]] * 1)
    table = np.vstack([table, [b.count(c) for c in ("claude", "gpt-4o", "gpt-4o-mini")]])
    ref = stats.chi2_contingency(table, correction=False)
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue)
    assert r.details["dof"] == 2
    assert r.effect_name == "max share change"
    shares_a = table[0] / table[0].sum()
    shares_b = table[1] / table[1].sum()
    assert r.effect == pytest.approx(np.max(np.abs(shares_b - shares_a)))


def test_chi2_merges_rare_categories_into_other() -> None:
    a = ["x"] * 200 + ["y"] * 100 + ["r1"] * 4 + ["r2"] * 5
    b = ["x"] * 100 + ["y"] * 80 + ["r1"] * 2 + ["r3"] * 3 + [None] * 20
    r = chi2_test.run("finish_reason", a, b)
    assert r.details["buckets"] == 4  # x, y, (missing), (other)
    assert r.details["merged_into_other"] == ["r1", "r2", "r3"]
    table = np.array([[0, 200, 100, 9], [20, 100, 80, 5]])
    ref = stats.chi2_contingency(table, correction=False)
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue)


def test_merge_rare_folds_a_small_other_bucket_into_the_smallest_category() -> None:
    cats = ["a", "b", "c", "z"]
    names, a, b, merged = merge_rare(
        cats, np.array([100.0, 50.0, 20.0, 1.0]), np.array([100.0, 50.0, 20.0, 2.0])
    )
    # z alone expects 1.5 per window: it takes c (the smallest kept category) with it.
    assert names == ["a", "b", OTHER]
    assert merged == ["c", "z"]
    assert a.tolist() == [100, 50, 21] and b.tolist() == [100, 50, 22]


def test_chi2_with_a_single_bucket_says_no_drift() -> None:
    r = chi2_test.run("model", ["a"] * 50, ["a"] * 40)
    assert r.p_value == 1.0 and r.drifted is False and r.effect == 0.0


def test_js_hand_computed_example() -> None:
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    expected = math.sqrt((kl_p + kl_q) / 2)
    assert expected == pytest.approx(0.5579230)
    assert js_distance(p, q) == pytest.approx(expected)
    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2))
    assert js_distance(p, p) == 0.0
    r = js_test.run("route", ["a"] * 100 + ["b"] * 100, ["a"] * 200)
    assert r.statistic == pytest.approx(expected)
    assert r.effect_name == "JS distance" and r.p_value is None
    assert r.drifted is True


def test_js_needs_more_data_for_more_buckets() -> None:
    a = [f"c{i % 8}" for i in range(120)]
    r = js_test.run("tool", a, a)
    assert r.drifted is None and r.note is not None and "for 8 buckets" in r.note
    big = [f"c{i % 8}" for i in range(2000)]
    assert js_test.run("tool", big, big).drifted is False


def test_missing_values_are_a_category() -> None:
    r = chi2_test.run("status", ["ok"] * 100 + [None] * 100, ["ok"] * 200)
    assert any(s["category"] == MISSING for s in r.details["top_shifts"])
    assert r.drifted is True


def test_category_shifts_largest_change_first() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 20 + ["b"] * 30 + ["c"] * 10 + ["d"] * 40
    shifts = category_shifts(ref, cur, k=3)
    assert [s["category"] for s in shifts] == ["d", "a", "c"]
    assert shifts[1] == {
        "category": "a",
        "reference_share": 0.5,
        "current_share": 0.2,
        "change": pytest.approx(-0.3),
    }
    assert shifts[0]["reference_share"] == 0.0 and shifts[0]["current_share"] == 0.4
    with pytest.raises(ValueError, match="k must be a positive integer"):
        category_shifts(ref, cur, k=0)
    with pytest.raises(ValueError, match="sequence of category labels"):
        category_shifts("abc", cur)


# ------------------------------------------------------------------ correct()


def test_holm_adjustment_hand_computed() -> None:
    out = correct([result(0.01), result(0.04), result(0.03), result(0.005)])
    assert [r.p_adjusted for r in out] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r.drifted for r in out] == [True, False, False, True]


def test_bh_adjustment_matches_the_stats_module_and_scipy() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    out = correct([result(v) for v in p], alpha=0.05, method="bh")
    adjusted = [r.p_adjusted for r in out]
    assert adjusted == pytest.approx(benjamini_hochberg(p))
    assert adjusted == pytest.approx(stats.false_discovery_control(p).tolist())
    assert [r.drifted for r in out] == [True, True, True, True, False]


def test_correct_leaves_threshold_and_too_small_results_alone() -> None:
    threshold = result(None, drifted=True)
    small = result(None, note="window too small")
    out = correct([result(0.001), threshold, small, result(0.9, drifted=False)])
    assert out[1] is threshold and out[2] is small
    assert out[0].drifted is True and out[0].p_adjusted == pytest.approx(0.002)
    assert out[3].p_adjusted == pytest.approx(0.9)
    # The family is only the two results with p-values.
    assert correct([]) == []


def test_correct_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alpha"):
        correct([result(0.1)], alpha=1.5)
    with pytest.raises(ValueError, match="method"):
        correct([result(0.1)], method="bonferroni")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"results\[0\].*p_value 1.5"):
        correct([result(1.5)])
