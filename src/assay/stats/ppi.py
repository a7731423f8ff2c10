"""Prediction-powered inference: a mean from a few human labels and many judge scores.

Angelopoulos et al., "Prediction-powered inference", Science 382 (2023); PPI++:
Angelopoulos, Duchi, Zrnic, "PPI++: Efficient Prediction-Powered Inference",
arXiv 2311.01453. The judge's mean over all traffic is corrected by its error measured on
the labelled items, so the judge's bias does not leak into the estimate; its accuracy
only decides how much narrower the interval gets than the human-only one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from assay.stats._inputs import FloatArray, check_level
from assay.stats.calibration import Numbers, finite_array


@dataclass(frozen=True, slots=True)
class PPIEstimate:
    """A mean with its interval from n labelled and N judge-only items, next to the alternatives.

    ``estimate`` ± z·``se`` (``low``, ``high``) is the PPI++ interval for the power
    ``lam`` (λ; ``tuned`` says whether it was chosen from the data). ``classical_*`` is
    the human-only interval (λ = 0), ``judge_*`` the judge's own mean over the unlabelled
    items with its naive interval, which ignores the judge's bias: do not use it as a
    quality estimate. ``judge_offset`` is mean(judge − human) on the labelled items.
    ``effective_labels`` = n · se_classical² / se²: how many human labels alone would give
    this precision. ``weighted`` says whether inverse-probability weights were used.
    """

    estimate: float
    se: float
    low: float
    high: float
    level: float
    lam: float
    tuned: bool
    n_labelled: int
    n_unlabelled: int
    classical_estimate: float
    classical_se: float
    classical_low: float
    classical_high: float
    judge_mean: float
    judge_low: float
    judge_high: float
    judge_offset: float
    effective_labels: float
    weighted: bool


def _weights(weights: Numbers, n: int) -> FloatArray:
    w = finite_array(weights, "weights")
    if len(w) != n:
        raise ValueError(
            f"weights has {len(w)} entries but there are {n} labelled items; give one weight "
            "(1 / selection probability) per labelled item"
        )
    bad = np.flatnonzero(w <= 0.0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"weights[{i}] = {float(w[i])!r}: weights must be > 0 (the inverse of the item's "
            "chance of being picked for labelling)"
        )
    return np.asarray(w / float(w.mean()))


def ppi_mean(
    y_labelled: Numbers,
    f_labelled: Numbers,
    f_unlabelled: Numbers,
    *,
    level: float = 0.95,
    lam: float | Literal["tuned"] = "tuned",
    weights: Numbers | None = None,
) -> PPIEstimate:
    """PPI++ estimate of the mean of Y with its normal interval.

    ``y_labelled``: human labels (1/0 for pass/fail, or any number); ``f_labelled``: the
    judge's scores of the same items; ``f_unlabelled``: the judge's scores of the items
    without labels. θ̂ = λ·mean(f_unlabelled) + mean(y − λ·f_labelled); ``lam="tuned"``
    picks λ̂ = Cov(y, f)/((1 + n/N)·Var(f)) clipped to [0, 1]; a number in [0, 1] fixes it
    (0: human labels only, 1: plain PPI). ``weights``: one inverse selection probability
    per labelled item when labelled items were not picked uniformly at random.
    """
    level = check_level(level)
    y = finite_array(y_labelled, "y_labelled")
    f = finite_array(f_labelled, "f_labelled")
    ft = finite_array(f_unlabelled, "f_unlabelled")
    n, big_n = len(y), len(ft)
    if len(f) != n:
        raise ValueError(
            f"y_labelled and f_labelled must have the same length (human label and judge "
            f"score of each labelled item), got {n} and {len(f)}"
        )
    if n < 2:
        raise ValueError(f"y_labelled has {n} item(s); a standard error needs at least 2 labels")
    if big_n < 2:
        raise ValueError(
            f"f_unlabelled has {big_n} item(s); pass the judge scores of at least 2 "
            "unlabelled items"
        )
    w = None if weights is None else _weights(weights, n)
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    mean_ft = float(ft.mean())
    var_ft = float(ft.var(ddof=1))

    if w is None:
        y_bar, f_bar = float(y.mean()), float(f.mean())

        def mean_lab(r: FloatArray) -> float:
            return float(r.mean())

        def var_lab(r: FloatArray) -> float:
            # Variance of the labelled-sample mean of r.
            return float(r.var(ddof=1)) / n

    else:
        ww = w
        y_bar, f_bar = float(ww @ y) / n, float(ww @ f) / n

        def mean_lab(r: FloatArray) -> float:
            return float(ww @ r) / n

        def var_lab(r: FloatArray) -> float:
            # Linearised (sandwich) variance of the Hájek weighted mean, weights of mean 1.
            dev = ww * (r - float(ww @ r) / n)
            return float(dev @ dev) / (n * (n - 1))

    tuned = lam == "tuned"
    if tuned:
        lam_value = _tuned_lambda(y, f, ft, w, y_bar, f_bar, var_ft)
    else:
        if isinstance(lam, str | bool):
            raise ValueError(f"lam must be 'tuned' or a number in [0, 1], got {lam!r}")
        lam_value = float(lam)
        if not 0.0 <= lam_value <= 1.0:
            raise ValueError(
                f"lam must be in [0, 1] (0: human labels only, 1: plain PPI), got {lam!r}"
            )
    resid = y - lam_value * f
    estimate = lam_value * mean_ft + mean_lab(resid)
    var = lam_value**2 * var_ft / big_n + var_lab(resid)
    se = math.sqrt(max(var, 0.0))
    var_classical = var_lab(y)
    se_classical = math.sqrt(var_classical)
    if var > 0.0:
        effective = n * var_classical / var
    else:
        effective = math.inf if var_classical > 0.0 else float(n)
    se_judge = math.sqrt(var_ft / big_n)
    return PPIEstimate(
        estimate=estimate,
        se=se,
        low=estimate - z * se,
        high=estimate + z * se,
        level=level,
        lam=lam_value,
        tuned=tuned,
        n_labelled=n,
        n_unlabelled=big_n,
        classical_estimate=y_bar,
        classical_se=se_classical,
        classical_low=y_bar - z * se_classical,
        classical_high=y_bar + z * se_classical,
        judge_mean=mean_ft,
        judge_low=mean_ft - z * se_judge,
        judge_high=mean_ft + z * se_judge,
        judge_offset=f_bar - y_bar,
        effective_labels=effective,
        weighted=w is not None,
    )


def _tuned_lambda(
    y: FloatArray,
    f: FloatArray,
    ft: FloatArray,
    w: FloatArray | None,
    y_bar: float,
    f_bar: float,
    var_ft: float,
) -> float:
    """λ̂ minimising the estimated variance, clipped to [0, 1] (0 when the judge is constant)."""
    n, big_n = len(y), len(ft)
    if w is None:
        # PPI++ (STATS.md §6): Var(f) pooled over labelled and unlabelled predictions.
        pooled = np.concatenate([f, ft])
        var_f = float(pooled.var(ddof=1))
        if var_f <= 0.0:
            return 0.0
        cov = float((y - y_bar) @ (f - f_bar)) / (n - 1)
        lam = cov / ((1.0 + n / big_n) * var_f)
    else:
        # The exact minimiser of λ²·Var(f̃)/N + Var_w(y − λf) for the weighted estimator.
        wy, wf = w * (y - y_bar), w * (f - f_bar)
        k = 1.0 / (n * (n - 1))
        denom = k * float(wf @ wf) + var_ft / big_n
        if denom <= 0.0:
            return 0.0
        lam = k * float(wy @ wf) / denom
    return min(1.0, max(0.0, lam))
