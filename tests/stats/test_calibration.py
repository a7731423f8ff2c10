"""Calibration: ECE by hand, isotonic and Platt fits, stored calibrators, label-free rate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import isotonic_regression
from scipy.special import expit, logit

from assay.stats import (
    IsotonicCalibrator,
    PlattCalibrator,
    brier_score,
    calibration_report,
    calibrator_from_dict,
    expected_calibration_error,
    expected_pass_rate,
    fit_calibrator,
    reliability_diagram,
    wilson_interval,
)


def _overconfident(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A judge whose log-odds are twice too large, with a slight lean towards pass."""
    raw = rng.uniform(0.02, 0.98, n)
    truth = expit(0.5 * logit(raw) - 0.2)
    return raw, (rng.random(n) < truth).astype(np.float64)


def test_ece_by_hand_equal_mass() -> None:
    probs = [0.1, 0.9, 0.2, 0.8]
    outcomes = [0, 1, 1, 1]
    # Bins {0.1, 0.2}: confidence 0.15, pass rate 0.5; {0.8, 0.9}: 0.85 and 1.0.
    assert expected_calibration_error(probs, outcomes, bins=2) == pytest.approx(
        0.5 * 0.35 + 0.5 * 0.15
    )
    d = reliability_diagram(probs, outcomes, bins=2)
    assert [(b.low, b.high, b.count) for b in d.bins] == [(0.1, 0.2, 2), (0.8, 0.9, 2)]
    assert [b.mean_confidence for b in d.bins] == pytest.approx([0.15, 0.85])
    assert [b.accuracy for b in d.bins] == [0.5, 1.0]
    assert (d.bins[0].accuracy_low, d.bins[0].accuracy_high) == pytest.approx(wilson_interval(1, 2))
    assert d.n == 4 and d.strategy == "mass"


def test_ece_equal_width_bins_and_the_right_edge() -> None:
    probs = [0.05, 0.15, 0.95, 1.0]
    outcomes = [0, 0, 1, 1]
    d = reliability_diagram(probs, outcomes, bins=10, strategy="width")
    assert [b.count for b in d.bins] == [1, 1, 2]
    assert [b.low for b in d.bins] == pytest.approx([0.0, 0.1, 0.9])
    assert [b.high for b in d.bins] == pytest.approx([0.1, 0.2, 1.0])
    assert d.ece == pytest.approx((0.05 + 0.15 + 0.05 + 0.0) / 4)


def test_equal_probabilities_share_a_bin_whatever_the_order() -> None:
    probs = [0.7] * 6 + [0.2] * 4
    outcomes = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]
    d = reliability_diagram(probs, outcomes, bins=5)
    assert [b.count for b in d.bins] == [4, 6]
    rng = np.random.default_rng(0)
    order = rng.permutation(10)
    shuffled = reliability_diagram([probs[i] for i in order], [outcomes[i] for i in order], bins=5)
    assert shuffled == d


def test_ece_is_small_for_a_calibrated_judge_and_large_for_an_overconfident_one() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 20_000)
    calibrated = (rng.random(20_000) < p).astype(float)
    assert expected_calibration_error(p, calibrated) < 0.015
    raw, y = _overconfident(rng, 20_000)
    assert expected_calibration_error(raw, y) > 0.08
    assert brier_score(p, calibrated) == pytest.approx(np.mean((p - calibrated) ** 2))


def test_isotonic_pool_adjacent_violators_by_hand() -> None:
    cal = IsotonicCalibrator.fit([1, 2, 3, 4, 5], [0, 1, 0, 1, 1])
    # Blocks {1}: 0, {2, 3}: 0.5, {4, 5}: 1.
    assert cal.x == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert cal.y == (0.0, 0.5, 0.5, 1.0, 1.0)
    assert cal.predict([0, 1.5, 2.5, 3.5, 9]) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert cal.n == 5


def test_isotonic_matches_scipy_on_ties_and_noise() -> None:
    rng = np.random.default_rng(2)
    scores = rng.integers(1, 11, 500).astype(float)  # a 1-10 rating with many ties
    y = (rng.random(500) < scores / 12).astype(float)
    cal = IsotonicCalibrator.fit(scores, y)
    fitted = np.asarray(cal.predict(scores))
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y) / counts
    reference = isotonic_regression(means, weights=counts).x
    assert fitted == pytest.approx(reference[inverse])
    assert np.all(np.diff(cal.predict(np.linspace(0, 12, 200))) >= 0)


def test_platt_recovers_a_known_distortion() -> None:
    rng = np.random.default_rng(3)
    raw, y = _overconfident(rng, 40_000)
    cal = PlattCalibrator.fit(raw, y)
    assert cal.a == pytest.approx(0.5, abs=0.03)
    assert cal.b == pytest.approx(-0.2, abs=0.03)
    assert cal.predict([0.5]) == pytest.approx([expit(cal.b)])
    # Judge scores of exactly 0 and 1 are clipped, not infinite.
    assert all(0.0 < v < 1.0 for v in cal.predict([0.0, 1.0]))


def test_platt_smoothing_keeps_separable_data_finite() -> None:
    cal = PlattCalibrator.fit([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert math.isfinite(cal.a) and math.isfinite(cal.b)
    low, high = cal.predict([0.1, 0.9])
    assert 0.0 < low < 0.5 < high < 1.0


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_stored_calibrator_round_trips_through_json(method: str) -> None:
    rng = np.random.default_rng(4)
    raw, y = _overconfident(rng, 300)
    cal = fit_calibrator(raw, y, method)  # type: ignore[arg-type]
    stored = json.loads(json.dumps(cal.to_dict()))
    assert stored["method"] == method and stored["version"] == 1 and stored["n"] == 300
    again = calibrator_from_dict(stored)
    assert again == cal
    later = rng.uniform(0, 1, 50)
    assert again.predict(later) == cal.predict(later)


def test_stored_calibrator_errors_name_the_problem() -> None:
    good = IsotonicCalibrator.fit([0.1, 0.5, 0.9], [0, 1, 1]).to_dict()
    with pytest.raises(ValueError, match="unknown method 'beta'"):
        calibrator_from_dict({**good, "method": "beta"})
    with pytest.raises(ValueError, match="version 2 is not supported"):
        calibrator_from_dict({**good, "version": 2})
    with pytest.raises(ValueError, match="x must increase"):
        calibrator_from_dict({**good, "y": [1.0, 0.5, 0.0]})
    with pytest.raises(ValueError, match="equal length"):
        calibrator_from_dict({**good, "x": [0.1]})
    with pytest.raises(ValueError, match="a must be a finite number"):
        calibrator_from_dict({"method": "platt", "version": 1, "a": "1", "b": 0.0, "n": 3})
    with pytest.raises(ValueError, match="n must be"):
        calibrator_from_dict({"method": "platt", "version": 1, "a": 1.0, "b": 0.0, "n": 0})


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_report_improves_held_out_ece(method: str) -> None:
    rng = np.random.default_rng(5)
    raw, y = _overconfident(rng, 2000)
    r = calibration_report(raw.tolist(), y.tolist(), method)  # type: ignore[arg-type]
    assert (r.n, r.n_fit, r.n_holdout) == (2000, 1400, 600)
    assert r.ece_before is not None and r.brier_before is not None
    assert r.ece_after < r.ece_before / 2
    assert r.brier_after < r.brier_before
    assert r.diagram_before is not None and r.diagram_before.n == 600
    assert r.calibrator.n == 2000  # the calibrator to store is fitted on every label
    assert calibration_report(raw, y, method, seed=1) != r  # type: ignore[arg-type]
    assert calibration_report(raw, y, method) == r  # type: ignore[arg-type]


def test_calibration_report_on_ratings_has_no_before() -> None:
    rng = np.random.default_rng(6)
    ratings = rng.integers(1, 6, 400).astype(float)
    y = (rng.random(400) < ratings / 6).astype(float)
    r = calibration_report(ratings, y)
    assert r.ece_before is None and r.diagram_before is None and r.brier_before is None
    assert r.ece_after < 0.1
    with pytest.raises(ValueError, match="not a probability"):
        calibration_report(ratings, y, "platt")


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"outcomes\[1\] = 0.5"):
        expected_calibration_error([0.2, 0.4], [1, 0.5])
    with pytest.raises(ValueError, match=r"probs\[0\] = 1.5 is not a probability"):
        expected_calibration_error([1.5, 0.4], [1, 0])
    with pytest.raises(ValueError, match="same length"):
        reliability_diagram([0.2, 0.4], [1])
    with pytest.raises(ValueError, match="bins"):
        reliability_diagram([0.2], [1], bins=0)
    with pytest.raises(ValueError, match="strategy"):
        reliability_diagram([0.2], [1], strategy="quantile")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be split"):
        calibration_report([0.2, 0.4], [1, 0])
    with pytest.raises(ValueError, match="holdout"):
        calibration_report([0.2, 0.4, 0.3], [1, 0, 1], holdout=1.0)
    with pytest.raises(ValueError, match="method"):
        fit_calibrator([0.2], [1], "beta")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"scores\[1\] = 'x'"):
        IsotonicCalibrator.fit([0.2, "x"], [1, 0])  # type: ignore[list-item]


def test_expected_pass_rate_covers_the_realised_rate_while_calibration_holds() -> None:
    rng = np.random.default_rng(7)
    p = rng.beta(4, 2, 5000)
    est = expected_pass_rate(p.tolist())
    assert est.estimate == pytest.approx(p.mean())
    assert est.se == pytest.approx(math.sqrt(np.sum(p * (1 - p))) / 5000)
    realised = (rng.random((400, 5000)) < p).mean(axis=1)
    covered = np.mean((est.low <= realised) & (realised <= est.high))
    assert 0.92 <= covered <= 0.98
    # When the judge drifts (true pass chances fall by 0.1) the estimate misses: it
    # only holds while calibration holds.
    drifted = (rng.random((400, 5000)) < np.clip(p - 0.1, 0, 1)).mean(axis=1)
    assert np.mean((est.low <= drifted) & (drifted <= est.high)) == 0.0
    with pytest.raises(ValueError, match="empty"):
        expected_pass_rate([])
