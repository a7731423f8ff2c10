"""Power and sample size: STATS.md §4 figures, variance components, the plan."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assay.stats import (
    case_correlation,
    minimum_detectable_effect,
    plan,
    sample_size,
    variance_components,
)


def test_stats_md_section_4_figures() -> None:
    # Pass rate 0.5: one score has variance 0.25. Unpaired, Var(d) = 2 * 0.25; paired
    # with correlation 0.5, Var(d) = 2 * 0.25 * (1 - 0.5).
    assert abs(sample_size(0.03, 0.5, alpha=0.05, power=0.8) - 4360) <= 1
    assert abs(sample_size(0.03, 0.25, alpha=0.05, power=0.8) - 2180) <= 1


def test_plan_reproduces_section_4_from_run_data() -> None:
    # Every case always passes or always fails, half each: ω² = 0.25, σ² = 0.
    runs = {f"c{i}": [float(i % 2)] * 2 for i in range(10_000)}
    p = plan(runs, delta=0.03)
    assert p.correlation == 0.5 and p.correlation_source == "default"
    assert p.omega2 == pytest.approx(0.25, rel=1e-3) and p.sigma2 == 0.0
    for row in p.rows:  # no trial noise, so more trials do not help
        assert row.n_paired == pytest.approx(2180, rel=2e-3)
        assert row.n_unpaired == pytest.approx(4360, rel=2e-3)
        assert row.calls_paired == 2 * row.trials * row.n_paired
    assert [r.trials for r in p.rows] == [1, 3, 5, 10]
    assert p.notes == ()


def test_mde_and_sample_size_are_inverses() -> None:
    for delta, var_d in [(0.03, 0.25), (0.1, 0.05), (2.0, 9.0)]:
        n = sample_size(delta, var_d)
        assert (
            minimum_detectable_effect(var_d, n) <= delta < minimum_detectable_effect(var_d, n - 1)
        )
    assert minimum_detectable_effect(0.25, 2180) == pytest.approx(0.03, rel=1e-4)
    # A tighter alpha or more power needs more cases.
    assert sample_size(0.05, 0.2, alpha=0.01) > sample_size(0.05, 0.2)
    assert sample_size(0.05, 0.2, power=0.9) > sample_size(0.05, 0.2)
    assert sample_size(-0.05, 0.2) == sample_size(0.05, 0.2)
    assert sample_size(0.05, 0.0) == 2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sample_size(0.0, 0.2), "delta must be a non-zero"),
        (lambda: sample_size(0.1, -1.0), "var_d must be a finite variance"),
        (lambda: sample_size(0.1, math.inf), "one case has no variance"),
        (lambda: sample_size(0.1, 0.2, alpha=0.0), "alpha must be between 0 and 1"),
        (lambda: sample_size(0.1, 0.2, power=80), "power must be between 0 and 1"),
        (lambda: minimum_detectable_effect(0.2, 0), "n must be a positive whole number"),
    ],
)
def test_bad_arguments_are_named(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


def test_variance_components_by_hand() -> None:
    # Within: only case 0 varies, Σ(s - mean)² = 0.5 over Σ(K - 1) = 3 → σ² = 1/6.
    # Case means (0.5, 1, 0) have variance 0.25, of which σ² · mean(1/K) = 1/12 is noise.
    omega2, sigma2 = variance_components([[1, 0], [1, 1], [0, 0]])
    assert sigma2 == pytest.approx(1 / 6)
    assert omega2 == pytest.approx(0.25 - 1 / 12)
    # Pure trial noise cannot make ω² negative.
    assert variance_components([[1, 0], [0, 1], [1, 0]])[0] == 0.0
    assert variance_components([[0.3, 0.5]]) == (0.0, pytest.approx(0.02))


def test_variance_components_recover_a_known_model() -> None:
    # p ~ Beta(2, 3): ω² = Var(p) = 0.04 and σ² = E[p(1-p)] = 0.2, with K = 4 trials.
    rng = np.random.default_rng(7)
    p = rng.beta(2.0, 3.0, size=(20_000, 1))
    trials = (rng.random((20_000, 4)) < p).astype(float)
    omega2, sigma2 = variance_components(trials.tolist())
    assert omega2 == pytest.approx(0.04, rel=0.05)
    assert sigma2 == pytest.approx(0.2, rel=0.02)


def _correlated_runs(
    rng: np.random.Generator, n: int, k: int, omega: float, sigma: float, rho: float
) -> tuple[dict[str, list[float]], dict[str, list[float]], np.ndarray]:
    mu_a = rng.normal(0.0, omega, n)
    mu_b = rho * mu_a + math.sqrt(1 - rho**2) * rng.normal(0.0, omega, n)
    a = mu_a[:, None] + rng.normal(0.0, sigma, (n, k))
    b = mu_b[:, None] + rng.normal(0.0, sigma, (n, k))
    d = b.mean(axis=1) - a.mean(axis=1)
    ids = [f"c{i}" for i in range(n)]
    return dict(zip(ids, a.tolist(), strict=True)), dict(zip(ids, b.tolist(), strict=True)), d


def test_plan_variance_matches_simulated_paired_runs() -> None:
    # Two runs whose true case means correlate 0.7, K = 3 trials each: the empirical
    # Var(d) must match the plan's 2ω²(1−ρ) + 2σ²/K, with ρ estimated from the runs.
    rng = np.random.default_rng(13)
    omega, sigma, rho, k = 0.2, 0.3, 0.7, 3
    base, cand, d = _correlated_runs(rng, 20_000, k, omega, sigma, rho)
    truth = 2 * omega**2 * (1 - rho) + 2 * sigma**2 / k
    assert float(d.var(ddof=1)) == pytest.approx(truth, rel=0.03)
    assert case_correlation(base, cand) == pytest.approx(rho, abs=0.03)
    p = plan(base, delta=0.05, trials=(k,), candidate_case_scores=cand)
    assert p.correlation_source == "estimated"
    assert p.rows[0].var_d_paired == pytest.approx(truth, rel=0.05)
    assert p.rows[0].var_d_unpaired == pytest.approx(2 * (omega**2 + sigma**2 / k), rel=0.05)


def test_more_trials_and_pairing_need_fewer_cases() -> None:
    rng = np.random.default_rng(17)
    base, _, _ = _correlated_runs(rng, 300, 4, omega=0.15, sigma=0.3, rho=1.0)
    p = plan(base, delta=0.05, correlation=0.8)
    assert p.correlation_source == "given"
    paired = [r.n_paired for r in p.rows]
    assert paired == sorted(paired, reverse=True) and paired[0] > paired[-1]
    assert all(r.n_paired < r.n_unpaired for r in p.rows)
    # Each row is the section 4 formula applied to its Var(d).
    for r in p.rows:
        assert r.var_d_paired == pytest.approx(2 * p.omega2 * (1 - 0.8) + 2 * p.sigma2 / r.trials)
        assert r.n_paired == sample_size(0.05, r.var_d_paired)


def test_single_trial_runs_warn_that_noise_cannot_be_separated() -> None:
    p = plan([[1.0], [0.0], [1.0], [1.0]], delta=0.1, trials=(1, 5))
    assert p.sigma2 == 0.0
    assert len(p.notes) == 1 and "one trial per case" in p.notes[0]
    assert p.rows[0].n_paired == p.rows[1].n_paired


def test_plan_rejects_bad_arguments() -> None:
    runs = {"a": [1.0, 0.0], "b": [0.0, 0.0], "c": [1.0, 1.0]}
    with pytest.raises(ValueError, match=r"correlation must be in \[-1, 1\]"):
        plan(runs, delta=0.1, correlation=1.5)
    with pytest.raises(ValueError, match="trials must be positive whole numbers"):
        plan(runs, delta=0.1, trials=(0, 3))
    with pytest.raises(ValueError, match="trials is empty"):
        plan(runs, delta=0.1, trials=())
    with pytest.raises(ValueError, match="delta"):
        plan(runs, delta=0.0)
    with pytest.raises(TypeError, match="must map case id"):
        plan([[1.0, 0.0]], delta=0.1, candidate_case_scores={"a": [1.0]})
    few = plan(runs, delta=0.1, candidate_case_scores={"a": [1.0]})
    assert few.correlation_source == "default" and "could not be estimated" in few.notes[0]
