"""Embedding drift: MMD² (exact and random features), domain classifier, per-dimension KS,
and the examples shown to explain a drift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from assay.drift import classifier_test, farthest_examples, ks_per_dim_test, mmd_test
from assay.drift.embedding import (
    _ExactMMD,
    _FourierMMD,
    _membership,
    auc_mann_whitney,
    ks_per_dim,
    median_bandwidth,
    mmd_unbiased,
    sequential_p_value,
)


def unit_rows(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> NDArray[np.float32]:
    """Isotropic rows of norm ≈ 1, moved by ``shift`` along a fixed direction, normalised."""
    z = rng.standard_normal((n, d)) / math.sqrt(d)
    u = np.random.default_rng(12345).standard_normal(d)
    z += shift * u / np.linalg.norm(u)
    out: NDArray[np.float32] = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)
    return out


def topics(rng: np.random.Generator, n: int, d: int, mix: list[float]) -> NDArray[np.float32]:
    """Rows around fixed topic centres (the same centres for every call), with noise."""
    centres = np.random.default_rng(99).standard_normal((len(mix), d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.choice(len(mix), n, p=mix)
    z = centres[labels] + 0.6 * rng.standard_normal((n, d)) / math.sqrt(d)
    out: NDArray[np.float32] = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)
    return out


# ------------------------------------------------------------------ MMD


def test_unbiased_mmd_matches_a_direct_double_loop() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    y = (rng.normal(size=(4, 3)) + 0.5).astype(np.float32)
    sigma = 1.3

    def k(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
        diff = a.astype(np.float64) - b.astype(np.float64)
        return math.exp(-float(diff @ diff) / (2 * sigma**2))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert mmd_unbiased(x, y, sigma) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_permuted_statistics_match_the_estimator_on_relabelled_rows() -> None:
    rng = np.random.default_rng(1)
    x, y = unit_rows(rng, 7, 4), unit_rows(rng, 6, 4, 0.5)
    pooled = np.vstack([x, y])
    perm = rng.permutation(13)
    engine = _ExactMMD(x, y, 0.8)
    got = engine(_membership(perm[None, :], 7, 13))[0]
    assert got == pytest.approx(mmd_unbiased(pooled[perm[:7]], pooled[perm[7:]], 0.8))


def test_random_features_agree_with_the_exact_kernel_on_moderate_sizes() -> None:
    rng = np.random.default_rng(2)
    x, y = unit_rows(rng, 800, 64), unit_rows(rng, 800, 64, 0.2)
    sigma = median_bandwidth(np.vstack([x, y]))
    z = _membership(np.arange(1600)[None, :], 800, 1600)
    exact = _ExactMMD(x, y, sigma)(z)[0]
    approx = _FourierMMD(x, y, sigma, 1024, seed=0)(z)[0]
    assert approx == pytest.approx(exact, rel=0.15)
    # The whole test: both paths detect the shift, both accept a resample.
    fast, slow = mmd_test(exact_max=0), mmd_test(exact_max=10**9)
    assert fast.run("e", x, y).details["estimator"].startswith("random Fourier")
    assert slow.run("e", x, y).details["estimator"] == "exact"
    assert fast.run("e", x, y).drifted and slow.run("e", x, y).drifted
    same = unit_rows(rng, 800, 64)
    assert fast.run("e", x, same).p_value > 0.05  # type: ignore[operator]
    assert slow.run("e", x, same).p_value > 0.05  # type: ignore[operator]


def test_mmd_result_fields_and_determinism() -> None:
    rng = np.random.default_rng(3)
    x, y = unit_rows(rng, 300, 32), unit_rows(rng, 200, 32, 0.3)
    r = mmd_test.run("input_embedding", x, y, seed=4)
    assert r == mmd_test.run("input_embedding", x, y, seed=4)
    assert (r.test, r.effect_name, r.n_reference, r.n_current) == ("mmd", "MMD²", 300, 200)
    assert r.statistic == r.effect == pytest.approx(mmd_unbiased(x, y), rel=1e-6)
    # A clear drift runs every permutation and reaches the smallest p-value they allow.
    assert r.details["permutations"] == 1000
    assert r.p_value == pytest.approx(1 / 1001)
    assert r.drifted is True


def test_mmd_stops_permuting_early_when_the_p_value_is_clearly_large() -> None:
    rng = np.random.default_rng(5)
    r = mmd_test.run("e", unit_rows(rng, 200, 16), unit_rows(rng, 200, 16))
    assert r.details["permutations"] < 100
    assert r.p_value == pytest.approx(10 / r.details["permutations"])


def test_mmd_caps_large_windows_with_a_stated_sample() -> None:
    rng = np.random.default_rng(6)
    x, y = unit_rows(rng, 900, 8), unit_rows(rng, 500, 8)
    r = mmd_test(max_samples=400).run("e", x, y)
    assert r.n_reference == 900
    assert r.details["subsample"]["reference"] == [400, 900]
    assert r.details["subsample"]["current"] == [400, 500]
    assert "without replacement" in r.details["subsample"]["method"]


def test_sequential_p_value_rules() -> None:
    # Every draw reaches the observed value: stop at the 10th, p = 10/10.
    assert sequential_p_value(
        0.5, lambda k: np.ones(k), batch=100, max_draws=1000, stop_after=10
    ) == (1.0, 10)
    # None do: all draws, p = 1/(draws + 1).
    assert sequential_p_value(
        0.5, lambda k: np.zeros(k), batch=100, max_draws=1000, stop_after=10
    ) == (1 / 1001, 1000)
    # Without early stopping it is the plain permutation p-value.
    draws = iter([np.array([0.1, 0.9, 0.6, 0.2])])
    assert sequential_p_value(
        0.5, lambda k: next(draws), batch=4, max_draws=4, stop_after=None
    ) == (3 / 5, 4)


# ------------------------------------------------------------------ classifier


def test_auc_is_mann_whitney_u_over_mn() -> None:
    assert auc_mann_whitney(np.array([3.0, 2.0]), np.array([1.0, 2.0])) == 0.875
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.3, size=40), rng.normal(size=50)
    u = stats.mannwhitneyu(a, b).statistic
    assert auc_mann_whitney(a, b) == pytest.approx(u / (40 * 50))


def test_classifier_tells_apart_a_new_topic_and_points_at_it() -> None:
    rng = np.random.default_rng(8)
    ref = topics(rng, 600, 32, [0.5, 0.5, 0.0])
    cur = topics(rng, 600, 32, [0.4, 0.4, 0.2])
    r = classifier_test.run("input_embedding", ref, cur)
    assert r.drifted is True and r.p_value < 1e-4  # type: ignore[operator]
    assert r.effect == pytest.approx(r.statistic - 0.5)
    assert r.effect > 0.05
    assert r.details["held_out"] == [300, 300]
    centres = np.random.default_rng(99).standard_normal((3, 32))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    shown = [i for i, _ in r.details["most_current_like"]]
    assert len(shown) == 10
    nearest = np.argmax(cur[shown] @ centres.T, axis=1)
    assert (nearest == 2).mean() >= 0.8


def test_classifier_p_value_is_the_one_sided_mann_whitney_test() -> None:
    rng = np.random.default_rng(9)
    r = classifier_test.run("e", unit_rows(rng, 400, 16), unit_rows(rng, 400, 16))
    assert 0.3 < r.statistic < 0.7
    n1 = n0 = 200
    z = (r.statistic * n1 * n0 - n1 * n0 / 2 - 0.5) / math.sqrt(n1 * n0 * (n1 + n0 + 1) / 12)
    assert r.p_value == pytest.approx(stats.norm.sf(z), rel=1e-6)


# ------------------------------------------------------------------ per-dimension KS


def test_per_dimension_ks_matches_scipy_with_ties_and_signed_zeros() -> None:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    y = (rng.normal(size=(170, 12)) * 1.2).astype(np.float32)
    y[:40] = x[:40]  # duplicate rows: ties across windows in every dimension
    x[:, 3] = np.round(x[:, 3])  # heavy ties within a dimension
    y[:, 3] = np.round(y[:, 3])
    x[:50, 5], y[:50, 5] = 0.0, -0.0
    d = ks_per_dim(x, y, chunk=5)
    for j in range(12):
        assert d[j] == pytest.approx(stats.ks_2samp(x[:, j], y[:, j]).statistic, abs=1e-12)


def test_per_dimension_ks_reports_bonferroni_and_drifted_dimensions() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2000, 20)).astype(np.float32)
    y = rng.normal(size=(1500, 20)).astype(np.float32)
    y[:, 7] += 0.3
    r = ks_per_dim_test.run("e", x, y)
    d7 = stats.ks_2samp(x[:, 7], y[:, 7], method="asymp")
    assert r.statistic == pytest.approx(d7.statistic)
    assert r.effect_name == "max KS D"
    assert r.p_value == pytest.approx(min(1.0, 20 * d7.pvalue), rel=0.1)
    assert r.details["dims"] == 20 and r.details["drifted_dims"] == 1
    assert r.details["top_dims"][0]["dim"] == 7
    assert r.drifted is True


def test_embedding_input_errors_say_what_to_fix() -> None:
    rng = np.random.default_rng(12)
    with pytest.raises(ValueError, match="reference has 8 dimensions and current 9"):
        mmd_test.run("e", unit_rows(rng, 40, 8), unit_rows(rng, 40, 9))
    bad = unit_rows(rng, 40, 8)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="current row 3 has NaN"):
        classifier_test.run("e", unit_rows(rng, 60, 8), bad)
    with pytest.raises(ValueError, match="2-d"):
        ks_per_dim_test.run("e", np.zeros(40), np.zeros(40))
    with pytest.raises(ValueError, match="seed"):
        mmd_test.run("e", unit_rows(rng, 40, 8), unit_rows(rng, 40, 8), seed=-1)


@pytest.mark.parametrize("test", [mmd_test, classifier_test, ks_per_dim_test])
def test_small_embedding_windows_give_no_verdict(test: object) -> None:
    rng = np.random.default_rng(13)
    r = test.run("e", unit_rows(rng, 500, 8), unit_rows(rng, 10, 8))  # type: ignore[attr-defined]
    assert r.drifted is None and r.p_value is None
    assert "have 500 in reference and 10 in current" in r.note


# ------------------------------------------------------------------ explanations


def test_farthest_examples_are_the_new_topic_not_a_lone_outlier() -> None:
    rng = np.random.default_rng(14)
    ref = topics(rng, 800, 32, [0.5, 0.5, 0.0])
    cur = topics(rng, 400, 32, [0.45, 0.45, 0.10])
    outlier = -np.ones(32, dtype=np.float32) / math.sqrt(32)
    cur = np.vstack([cur, outlier])
    found = farthest_examples(ref, cur, k=10)
    assert len(found) == 10
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    centres = np.random.default_rng(99).standard_normal((3, 32))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    idx = [i for i, _ in found]
    assert all(np.argmax(cur[i] @ centres.T) == 2 for i in idx)
    assert 400 not in idx
    assert farthest_examples(ref, cur, k=10) == found  # deterministic


def test_farthest_examples_samples_candidates_beyond_the_cap() -> None:
    rng = np.random.default_rng(15)
    ref, cur = unit_rows(rng, 300, 8), unit_rows(rng, 500, 8, 0.5)
    found = farthest_examples(ref, cur, k=3, max_reference=100, max_candidates=200)
    assert len(found) == 3 and all(0 <= i < 500 for i, _ in found)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        farthest_examples(ref, cur, k=0)
