"""PPI and PPI++: formulas by hand, and STATS.md §6's reference simulation with a biased judge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from assay.stats import ppi_mean

TRUE_RATE = 0.70


def _judge(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    """STATS.md §6 judge: misses 10% of passes, passes 30% of fails."""
    u = rng.random(y.shape)
    return np.where(y == 1.0, u < 0.9, u < 0.3).astype(np.float64)


def _draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(size) < TRUE_RATE).astype(np.float64)
    return y, _judge(rng, y)


def test_by_hand() -> None:
    y = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    f = np.array([1, 1, 1, 0, 0, 1], dtype=float)
    ft = np.array([1, 0, 1, 1, 1, 0, 1, 1], dtype=float)
    n, big_n = 6, 8
    z = norm.ppf(0.975)

    ppi = ppi_mean(y, f, ft, lam=1.0)
    expected = ft.mean() + (y - f).mean()
    var = ft.var(ddof=1) / big_n + (y - f).var(ddof=1) / n
    assert ppi.estimate == pytest.approx(expected)
    assert ppi.se == pytest.approx(math.sqrt(var))
    assert (ppi.low, ppi.high) == pytest.approx((expected - z * ppi.se, expected + z * ppi.se))
    assert (ppi.lam, ppi.tuned) == (1.0, False)

    tuned = ppi_mean(y.tolist(), f.tolist(), ft.tolist())
    pooled = np.concatenate([f, ft]).var(ddof=1)
    lam = np.cov(y, f, ddof=1)[0, 1] / ((1 + n / big_n) * pooled)
    assert tuned.tuned and tuned.lam == pytest.approx(lam)
    assert tuned.estimate == pytest.approx(y.mean() + lam * (ft.mean() - f.mean()))
    var = lam**2 * ft.var(ddof=1) / big_n + (y - lam * f).var(ddof=1) / n
    assert tuned.se == pytest.approx(math.sqrt(var))

    # The human-only interval, the judge-only number and the effective number of labels.
    se_classical = y.std(ddof=1) / math.sqrt(n)
    assert tuned.classical_estimate == pytest.approx(y.mean())
    assert tuned.classical_se == pytest.approx(se_classical)
    assert tuned.classical_high - tuned.classical_low == pytest.approx(2 * z * se_classical)
    assert tuned.judge_mean == pytest.approx(ft.mean())
    assert tuned.judge_offset == pytest.approx(f.mean() - y.mean())
    assert tuned.effective_labels == pytest.approx(n * se_classical**2 / var)
    assert (tuned.n_labelled, tuned.n_unlabelled, tuned.weighted) == (6, 8, False)


def test_lambda_zero_is_the_classical_interval() -> None:
    rng = np.random.default_rng(3)
    y, f = _draw(rng, 150)
    _, ft = _draw(rng, 3000)
    est = ppi_mean(y, f, ft, lam=0.0)
    assert est.estimate == pytest.approx(est.classical_estimate)
    assert (est.low, est.high) == pytest.approx((est.classical_low, est.classical_high))
    assert est.effective_labels == pytest.approx(150)


def test_tuning_ignores_a_useless_judge_and_trusts_a_perfect_one() -> None:
    rng = np.random.default_rng(4)
    y, _ = _draw(rng, 300)
    noise = (rng.random(300) < 0.5).astype(float)
    constant = ppi_mean(y, np.ones(300), np.ones(5000))
    assert constant.lam == 0.0
    anti = ppi_mean(y, 1.0 - y, (rng.random(5000) < 0.3).astype(float))
    assert anti.lam == 0.0  # negative covariance is clipped to 0
    useless = ppi_mean(y, noise, (rng.random(5000) < 0.5).astype(float))
    assert useless.lam < 0.2
    assert useless.se == pytest.approx(useless.classical_se, rel=0.05)
    yt, _ = _draw(rng, 30_000)
    perfect = ppi_mean(y, y, yt)
    assert perfect.lam >= 0.95  # about 1/(1 + n/N) = 0.99, clipped at 1
    assert perfect.effective_labels > 20 * 300


def test_stats_md_reference_simulation() -> None:
    # STATS.md §6: true pass rate 0.70, judge misses 10% of passes and passes 30% of
    # fails, n = 200, N = 10,000, 95% intervals, 2,000 repetitions. By derivation the
    # mean widths are 2·1.96·sqrt(0.21/200) = 0.127 (classical),
    # 2·1.96·sqrt(0.2016/10000 + 0.1596/200) = 0.112 (PPI) and 0.101 at
    # λ = 0.126/(1.02·0.2016) = 0.613 (PPI++); the judge's own mean is 0.72.
    rng = np.random.default_rng(20231106)
    reps, n, big_n = 2000, 200, 10_000
    hits = {"classical": 0, "ppi": 0, "ppi++": 0, "judge": 0}
    widths: dict[str, list[float]] = {"classical": [], "ppi": [], "ppi++": []}
    lams = []
    for _ in range(reps):
        y, f = _draw(rng, n)
        _, ft = _draw(rng, big_n)
        ppi = ppi_mean(y, f, ft, lam=1.0)
        pp = ppi_mean(y, f, ft)
        lams.append(pp.lam)
        for name, lo, hi in (
            ("classical", pp.classical_low, pp.classical_high),
            ("ppi", ppi.low, ppi.high),
            ("ppi++", pp.low, pp.high),
            ("judge", pp.judge_low, pp.judge_high),
        ):
            hits[name] += lo <= TRUE_RATE <= hi
            if name != "judge":
                widths[name].append(hi - lo)
    coverage = {k: v / reps for k, v in hits.items()}
    width = {k: float(np.mean(v)) for k, v in widths.items()}
    for name in ("classical", "ppi", "ppi++"):
        assert 0.93 <= coverage[name] <= 0.97, (name, coverage[name])
    assert coverage["judge"] < 0.03
    assert width["classical"] == pytest.approx(0.127, abs=0.002)
    assert width["ppi"] == pytest.approx(0.112, abs=0.002)
    assert width["ppi++"] == pytest.approx(0.101, abs=0.002)
    assert float(np.mean(lams)) == pytest.approx(0.613, abs=0.02)


def test_weights_correct_a_labelled_sample_that_favours_judge_fails() -> None:
    # Labelling picks items the judge failed three times as often as items it passed
    # (selection chance 0.6 vs 0.2). Without weights the human-only interval is biased
    # low and plain PPI's high (the judge's error differs between the two kinds of
    # items); with weights 1/chance they cover the truth.
    rng = np.random.default_rng(11)
    reps, pool, big_n = 1000, 640, 10_000
    hits = {"weighted": 0, "weighted classical": 0, "unweighted": 0, "unweighted classical": 0}
    for _ in range(reps):
        y, f = _draw(rng, pool)
        chance = np.where(f == 1.0, 0.2, 0.6)
        picked = rng.random(pool) < chance
        _, ft = _draw(rng, big_n)
        w = ppi_mean(y[picked], f[picked], ft, weights=1.0 / chance[picked])
        u = ppi_mean(y[picked], f[picked], ft, lam=1.0)
        hits["weighted"] += w.low <= TRUE_RATE <= w.high
        hits["weighted classical"] += w.classical_low <= TRUE_RATE <= w.classical_high
        hits["unweighted"] += u.low <= TRUE_RATE <= u.high
        hits["unweighted classical"] += u.classical_low <= TRUE_RATE <= u.classical_high
    coverage = {k: v / reps for k, v in hits.items()}
    assert 0.93 <= coverage["weighted"] <= 0.97, coverage
    assert 0.93 <= coverage["weighted classical"] <= 0.97, coverage
    assert coverage["unweighted"] < 0.3 and coverage["unweighted classical"] < 0.01, coverage


def test_equal_weights_change_nothing_and_scale_does_not_matter() -> None:
    rng = np.random.default_rng(8)
    y, f = _draw(rng, 120)
    _, ft = _draw(rng, 2000)
    plain = ppi_mean(y, f, ft, lam=0.7)
    equal = ppi_mean(y, f, ft, lam=0.7, weights=[3.0] * 120)
    assert equal.weighted and not plain.weighted
    assert (equal.estimate, equal.se) == pytest.approx((plain.estimate, plain.se))
    w = rng.uniform(1, 5, 120)
    a = ppi_mean(y, f, ft, weights=w)
    b = ppi_mean(y, f, ft, weights=10 * w)
    assert (a.estimate, a.se, a.lam) == pytest.approx((b.estimate, b.se, b.lam))
    # Tuned λ with equal weights minimises the same variance up to O(1/n) terms.
    assert ppi_mean(y, f, ft, weights=[1.0] * 120).lam == pytest.approx(
        ppi_mean(y, f, ft).lam, abs=0.05
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y_labelled": [1, 0], "f_labelled": [1]}, ValueError, "same length"),
        ({"y_labelled": [1], "f_labelled": [1]}, ValueError, "at least 2 labels"),
        ({"f_unlabelled": [1]}, ValueError, "at least 2"),
        ({"y_labelled": [1, None]}, TypeError, r"y_labelled\[1\] = None"),
        ({"f_unlabelled": [0.5, math.inf]}, ValueError, r"f_unlabelled\[1\].*not finite"),
        ({"lam": 1.5}, ValueError, r"lam must be in \[0, 1\]"),
        ({"lam": "auto"}, ValueError, "'tuned' or a number"),
        ({"weights": [1.0]}, ValueError, "one weight"),
        ({"weights": [1.0, 0.0]}, ValueError, r"weights\[1\].*> 0"),
        ({"level": 1.0}, ValueError, "level"),
    ],
)
def test_bad_input_is_named(kwargs: dict[str, object], error: type, match: str) -> None:
    args: dict[str, object] = {
        "y_labelled": [1, 0],
        "f_labelled": [1, 1],
        "f_unlabelled": [1, 0, 1],
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ppi_mean(**args)  # type: ignore[arg-type]
