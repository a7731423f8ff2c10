"""Conformal risk control: thresholds by hand, and the realised risk by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assay.stats import conformal_threshold


def test_threshold_by_hand() -> None:
    # n = 19, risk 0.1: (W + 1)/(n + 1) <= 0.1 allows W <= 1 wrong answer.
    conf = [0.05 * i for i in range(1, 20)]  # 0.05 … 0.95
    correct = [1] * 19
    for i in (2, 9, 13):  # wrong at confidence 0.15, 0.50, 0.70
        correct[i] = 0
    t = conformal_threshold(conf, correct, 0.1)
    # W <= 1 needs a threshold above the second-highest wrong confidence, 0.50; the
    # smallest confidence seen above it is 0.55.
    assert t.threshold == pytest.approx(0.55)
    assert (t.n, t.n_wrong) == (19, 3)
    assert t.empirical_risk == pytest.approx(1 / 19)
    assert t.bound == pytest.approx(2 / 20)
    assert t.answer_rate == pytest.approx(9 / 19)
    assert t.error_rate_answered == pytest.approx(1 / 9)
    assert not t.abstain_all
    assert t.answers(0.55) and t.answers(0.9) and not t.answers(0.54)
    assert "answer when confidence >= 0.55" in t.message


def test_grid_limits_the_candidates() -> None:
    conf = [0.05 * i for i in range(1, 20)]
    correct = [0 if i in (2, 9, 13) else 1 for i in range(19)]
    t = conformal_threshold(conf, correct, 0.1, grid=[0.0, 0.25, 0.5, 0.75, 1.0])
    assert t.threshold == 0.75
    assert t.answer_rate == pytest.approx(5 / 19)


def test_a_judge_that_is_always_right_answers_everything() -> None:
    t = conformal_threshold([0.3, 0.9, 0.6] * 10, [1] * 30, 0.05)
    assert t.threshold == pytest.approx(0.3)
    assert t.answer_rate == 1.0 and t.empirical_risk == 0.0


def test_too_few_items_for_the_risk_abstains_on_everything() -> None:
    # With n items the bound is at least 1/(n + 1): 0.05 needs at least 19 items.
    t = conformal_threshold([0.9] * 10, [1] * 10, 0.05)
    assert t.abstain_all and t.threshold == math.inf
    assert t.answer_rate == 0.0 and t.error_rate_answered is None
    assert "label at least 19 items" in t.message
    assert not t.answers(1.0)
    assert not conformal_threshold([0.9] * 19, [1] * 19, 0.05).abstain_all


def test_top_confidence_wrong_abstains_with_a_message() -> None:
    # n = 33, risk 0.1 allows 2 wrong answers; the three surest answers are all wrong.
    t = conformal_threshold([0.99] * 3 + [0.5] * 30, [0] * 3 + [1] * 30, 0.1)
    assert t.abstain_all and t.threshold == math.inf
    assert "even the highest" in t.message


def _risk_at(threshold: np.ndarray) -> np.ndarray:
    # Confidence ~ Uniform(0, 1) and P(correct | c) = c: P(c >= t and wrong) = (1 − t)²/2.
    t = np.clip(threshold, 0.0, 1.0)
    return np.asarray((1.0 - t) ** 2 / 2.0)


@pytest.mark.parametrize(("n", "risk"), [(100, 0.1), (500, 0.05), (1000, 0.02)])
def test_realised_risk_on_fresh_data_is_at_most_the_target_on_average(n: int, risk: float) -> None:
    rng = np.random.default_rng(2208_02814 + n)
    reps = 2000
    thresholds = np.empty(reps)
    for r in range(reps):
        conf = rng.random(n)
        correct = rng.random(n) < conf
        thresholds[r] = conformal_threshold(conf, correct, risk).threshold
    realised = _risk_at(thresholds)
    mean = float(realised.mean())
    se = float(realised.std(ddof=1) / math.sqrt(reps))
    # Conformal risk control: E[risk] <= α, and >= α − 2/(n + 1) for continuous scores.
    assert mean <= risk + 2 * se
    assert mean >= risk - 2.0 / (n + 1) - 2 * se
    # A fixed threshold from one big sample would sit at the α quantile; the conformal
    # one spreads around it, so some calibration sets overshoot (that is expected).
    assert float(np.mean(realised > risk)) < 0.5


def test_fresh_items_empirically() -> None:
    # The same check against simulated fresh items rather than the closed form.
    rng = np.random.default_rng(7)
    losses = []
    for _ in range(300):
        conf, fresh = rng.random(200), rng.random(2000)
        t = conformal_threshold(conf, rng.random(200) < conf, 0.1)
        wrong = rng.random(2000) >= fresh
        losses.append(float(np.mean((fresh >= t.threshold) & wrong)))
    assert float(np.mean(losses)) <= 0.1


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="same length"):
        conformal_threshold([0.5, 0.6], [1], 0.1)
    with pytest.raises(ValueError, match="risk"):
        conformal_threshold([0.5], [1], 1.5)
    with pytest.raises(ValueError, match=r"correct\[0\] = 2"):
        conformal_threshold([0.5], [2], 0.1)
    with pytest.raises(ValueError, match="empty"):
        conformal_threshold([], [], 0.1)
    with pytest.raises(ValueError, match="grid is empty"):
        conformal_threshold([0.5], [1], 0.1, grid=[])
