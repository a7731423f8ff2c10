"""Paired comparison of two runs: exact tests by hand, error rates and power by simulation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats as sps

from assay.stats import (
    benjamini_hochberg,
    compare_many,
    compare_paired,
    mcnemar_exact,
    minimum_detectable_effect,
    sample_size,
)

Runs = dict[str, Sequence[float]]


def _runs(scores: np.ndarray) -> Runs:
    """Rows of a (cases, trials) array as a case-id mapping."""
    return {f"case{i}": row.tolist() for i, row in enumerate(scores)}


def _binary_pair(
    worse: int, better: int, same_pass: int = 20, same_fail: int = 20
) -> tuple[Runs, Runs]:
    base: Runs = {}
    cand: Runs = {}
    rows = [(1, 0)] * worse + [(0, 1)] * better + [(1, 1)] * same_pass + [(0, 0)] * same_fail
    for i, (b, c) in enumerate(rows):
        base[f"q{i}"], cand[f"q{i}"] = [b], [c]
    return base, cand


def test_mcnemar_exact_by_hand() -> None:
    # 10 discordant pairs, 1 worse and 9 better: p = 2 * (C(10,0) + C(10,1)) / 2^10.
    expected = 2 * (1 + 10) / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(expected)
    assert mcnemar_exact(0, 0) == 1.0
    base, cand = _binary_pair(worse=1, better=9)
    comp = compare_paired(base, cand)
    assert comp.test == "mcnemar-exact"
    assert comp.p_value == pytest.approx(expected)
    assert comp.verdict == "improvement"
    assert comp.diff == pytest.approx(8 / 50)
    assert (comp.n_better, comp.n_worse, comp.n_same) == (9, 1, 40)
    assert comp.flipped_to_fail == ("q0",)
    assert comp.flipped_to_pass == tuple(f"q{i}" for i in range(1, 10))
    # The same data at 99% is not enough.
    assert compare_paired(base, cand, level=0.99).verdict == "no detectable change"


def test_lower_is_better_reverses_the_verdict() -> None:
    base, cand = _binary_pair(worse=1, better=9)
    comp = compare_paired(base, cand, higher_is_better=False)
    assert comp.verdict == "regression"
    assert (comp.n_better, comp.n_worse) == (1, 9)


def test_sign_flip_exact_by_hand() -> None:
    # d = (1, 2, 3): of the 8 sign patterns only +++ and --- reach |sum| >= 6.
    base = {"a": [0.5], "b": [0.5, 0.5], "c": [0.25]}
    cand = {"a": [1.5], "b": [2.5], "c": [3.25, 3.25]}
    comp = compare_paired(base, cand)
    assert comp.test == "sign-flip-exact"
    assert comp.p_value == pytest.approx(2 / 8)
    # d = five +1 and one −1: |sum| >= 4 needs 0, 1, 5 or 6 plus signs: 14 of 64.
    base = {str(i): [0.2, 0.4] for i in range(6)}
    cand = {str(i): [1.3, 1.3] if i < 5 else [-0.7, -0.7] for i in range(6)}
    assert compare_paired(base, cand).p_value == pytest.approx(14 / 64)


def test_monte_carlo_agrees_with_exact_enumeration_and_is_seeded() -> None:
    rng = np.random.default_rng(5)
    base = _runs(rng.normal(0.5, 0.2, size=(16, 2)))
    cand = _runs(rng.normal(0.55, 0.2, size=(16, 2)))
    exact = compare_paired(base, cand, n_permutations=2**16)
    assert exact.test == "sign-flip-exact"
    mc = compare_paired(base, cand, n_permutations=20_000, seed=1)
    assert mc.test == "sign-flip-monte-carlo"
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.01)
    assert compare_paired(base, cand, n_permutations=20_000, seed=1).p_value == mc.p_value


def test_only_shared_cases_are_compared() -> None:
    base = {"a": [0.1], "b": [0.2], "only_base": [0.9]}
    cand = {"b": [0.3], "a": [0.2], "new1": [0.5], "new2": [0.5]}
    comp = compare_paired(base, cand)
    assert (comp.n_cases, comp.n_only_baseline, comp.n_only_candidate) == (2, 1, 2)
    assert comp.diff == pytest.approx(0.1)
    with pytest.raises(ValueError, match="share no case ids"):
        compare_paired({"a": [1.0]}, {"b": [1.0]})


def test_one_shared_case_is_defined_not_nan() -> None:
    comp = compare_paired({"a": [0.2]}, {"a": [0.9]})
    assert (comp.se, comp.low, comp.high, comp.mde) == (math.inf, -math.inf, math.inf, math.inf)
    assert comp.verdict == "no detectable change" and comp.p_value == 1.0
    with pytest.raises(ValueError, match="one case has no variance"):
        comp.cases_needed(0.1)


def test_no_change_at_all_still_reports_a_useful_mde() -> None:
    base, cand = _binary_pair(worse=0, better=0, same_pass=50, same_fail=50)
    comp = compare_paired(base, cand)
    assert (comp.p_value, comp.verdict, comp.var_d) == (1.0, "no detectable change", 0.0)
    # Nothing changed in 100 cases: changes under ~5 points could still hide.
    assert 0.03 < comp.mde < 0.08


def test_flips_use_the_majority_of_trials() -> None:
    base = {"up": [0, 0, 1], "down": [1, 1, 0], "tie": [1, 0], "kept": [1, 1, 1]}
    cand = {"up": [1, 1, 0], "down": [0, 0, 0], "tie": [1, 1], "kept": [1, 0, 1]}
    comp = compare_paired(base, cand)
    assert comp.test.startswith("sign-flip")
    assert (comp.flipped_to_pass, comp.flipped_to_fail) == (("up",), ("down",))
    assert compare_paired({"a": [0.2]}, {"a": [0.9]}).flipped_to_pass == ()


def test_bad_runs_are_rejected_clearly() -> None:
    with pytest.raises(TypeError, match="baseline must map case id"):
        compare_paired([[1.0]], {"a": [1.0]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"candidate\['a'\]\[0\].*not finite"):
        compare_paired({"a": [1.0]}, {"a": [math.nan]})
    with pytest.raises(ValueError, match="power"):
        compare_paired({"a": [1.0]}, {"a": [1.0]}, power=1.5)


def test_benjamini_hochberg_known_example() -> None:
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([]) == []
    p = np.random.default_rng(3).uniform(0, 0.2, size=25)
    expected = sps.false_discovery_control(p, method="bh")
    assert benjamini_hochberg(p.tolist()) == pytest.approx(expected.tolist())
    with pytest.raises(ValueError, match=r"p_values\[1\]"):
        benjamini_hochberg([0.1, 1.2])


def test_compare_many_decides_on_adjusted_p_values() -> None:
    signal = _binary_pair(worse=1, better=9)  # raw p 0.0215
    null = _binary_pair(worse=5, better=5)  # raw p 1
    alone = compare_paired(*signal)
    assert alone.verdict == "improvement" and alone.adjustment is None
    results = compare_many({"exact": signal, "tone": null, "length": null})
    comp = results["exact"]
    assert comp.p_value == pytest.approx(alone.p_value)
    assert comp.p_adjusted == pytest.approx(3 * alone.p_value)
    assert (comp.adjustment, comp.n_family) == ("benjamini-hochberg", 3)
    assert comp.verdict == "no detectable change"
    # Lower-is-better can be set per scorer.
    flipped = compare_many({"exact": signal}, higher_is_better={"exact": False})
    assert flipped["exact"].verdict == "regression"
    with pytest.raises(ValueError, match="not in pairs"):
        compare_many({"exact": signal}, higher_is_better={"latency": False})
    with pytest.raises(ValueError, match=r"scorer 'x'.*share no case ids"):
        compare_many({"x": ({"a": [1.0]}, {"b": [1.0]})})


def _error_rates(verdicts: list[str]) -> tuple[float, float]:
    reps = len(verdicts)
    return (
        sum(v != "no detectable change" for v in verdicts) / reps,
        sum(v == "regression" for v in verdicts) / reps,
    )


@pytest.mark.parametrize("setting", ["pass-fail-single", "pass-fail-trials", "skewed-continuous"])
def test_false_regressions_stay_within_alpha(setting: str) -> None:
    # Both runs come from the same system, so any verdict other than "no detectable
    # change" is a false alarm (at most 5%), and a false regression at most 2.5%.
    rng = np.random.default_rng({"pass-fail-single": 1, "pass-fail-trials": 2}.get(setting, 3))
    reps = 1000
    verdicts = []
    for _ in range(reps):
        if setting == "skewed-continuous":
            mu = rng.gamma(2.0, 1.0, size=(40, 1))
            a, b = mu + rng.exponential(1.0, (40, 2)), mu + rng.exponential(1.0, (40, 2))
        else:
            k = 1 if setting == "pass-fail-single" else 3
            p = rng.beta(2.0, 2.0, size=(60, 1))
            a = (rng.random((60, k)) < p).astype(float)
            b = (rng.random((60, k)) < p).astype(float)
        comp = compare_paired(_runs(a), _runs(b), n_permutations=1000)
        verdicts.append(comp.verdict)
        # A verdict never contradicts its own interval or p-value.
        if comp.verdict != "no detectable change":
            assert comp.p_value <= 0.05 and (comp.low > 0 or comp.high < 0)
    any_alarm, regression = _error_rates(verdicts)
    assert any_alarm <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    assert regression <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / reps)


def test_power_matches_the_planning_formula() -> None:
    # True case means vary; trials add noise sd 0.3; K = 3 per run; the candidate adds
    # delta to every case. Then Var(d) = 2 * 0.3² / 3 and sample_size gives n for 80%.
    rng = np.random.default_rng(11)
    delta, k, noise = 0.05, 3, 0.3
    var_d = 2 * noise**2 / k
    n = sample_size(delta, var_d, alpha=0.05, power=0.8)
    predicted = float(sps.norm.cdf(delta / math.sqrt(var_d / n) - sps.norm.ppf(0.975)))
    reps = 1000
    improved = 0
    mdes = []
    for _ in range(reps):
        mu = rng.normal(0.5, 0.2, size=(n, 1))
        base = mu + rng.normal(0.0, noise, (n, k))
        cand = mu + delta + rng.normal(0.0, noise, (n, k))
        comp = compare_paired(_runs(base), _runs(cand), n_permutations=1000)
        improved += comp.verdict == "improvement"
        mdes.append(comp.mde)
    assert abs(improved / reps - predicted) <= 0.04
    # The MDE a finished comparison prints is the delta it was planned for.
    assert float(np.mean(mdes)) == pytest.approx(minimum_detectable_effect(var_d, n), rel=0.03)
    assert float(np.mean(mdes)) == pytest.approx(delta, rel=0.03)


def test_rounding_noise_is_not_a_change() -> None:
    # mean(0.1, 0.2) and mean(0.15, 0.15) differ only in the last bits of a float.
    comp = compare_paired({"a": [0.1, 0.2], "b": [0.3]}, {"a": [0.15, 0.15], "b": [0.3]})
    assert (comp.n_same, comp.diff, comp.p_value) == (2, 0.0, 1.0)
